{{/* Names ------------------------------------------------------------- */}}

{{- define "lfr-stream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lfr-stream.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "lfr-stream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels ------------------------------------------------------------ */}}

{{- define "lfr-stream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lfr-stream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "lfr-stream.labels" -}}
helm.sh/chart: {{ include "lfr-stream.chart" . }}
{{ include "lfr-stream.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lfr-stream
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* commonAnnotations as an `annotations:` block body (empty when there are none). */}}
{{- define "lfr-stream.commonAnnotations" -}}
{{- with .Values.commonAnnotations }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/* metadata.annotations of an object: commonAnnotations plus its own
     (dict "ctx" $ "annotations" $own); renders nothing when both are empty. */}}
{{- define "lfr-stream.annotations" -}}
{{- $all := merge (deepCopy (default dict .annotations)) (default dict .ctx.Values.commonAnnotations) }}
{{- with $all -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Labels of a pod template: the selector labels, commonLabels and the pod's own
     (dict "ctx" $ "component" "worker" "podLabels" $w.podLabels). */}}
{{- define "lfr-stream.podLabels" -}}
{{ include "lfr-stream.componentSelectorLabels" (dict "ctx" .ctx "component" .component) }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- with .podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: (dict "ctx" $ "component" "worker") */}}
{{- define "lfr-stream.componentSelectorLabels" -}}
{{ include "lfr-stream.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "lfr-stream.componentLabels" -}}
{{ include "lfr-stream.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Object names ------------------------------------------------------ */}}

{{- define "lfr-stream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lfr-stream.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "lfr-stream.configMapName" -}}
{{- include "lfr-stream.fullname" . }}-config
{{- end }}

{{/* The hook jobs' ServiceAccount: the named one, a hook-created one, or the namespace's default. */}}
{{- define "lfr-stream.hookServiceAccountName" -}}
{{- if .Values.hooks.serviceAccountName }}
{{- .Values.hooks.serviceAccountName }}
{{- else if .Values.hooks.serviceAccount.create }}
{{- include "lfr-stream.fullname" . }}-hooks
{{- else }}
{{- "default" }}
{{- end }}
{{- end }}

{{- define "lfr-stream.hookConfigMapName" -}}
{{- include "lfr-stream.fullname" . }}-hook-config
{{- end }}

{{/* The Secret holding the secret settings: the user's or the chart's. */}}
{{- define "lfr-stream.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- include "lfr-stream.fullname" . }}-secrets
{{- end }}
{{- end }}

{{/* The Secret the hook jobs read: the user's (it exists before install) or a hook copy. */}}
{{- define "lfr-stream.hookSecretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- include "lfr-stream.fullname" . }}-hook-secrets
{{- end }}
{{- end }}

{{/* The image: image.registry, else global.imageRegistry, else the runtime's default. */}}
{{- define "lfr-stream.image" -}}
{{- $repo := .Values.image.repository }}
{{- $registry := .Values.image.registry | default ((.Values.global).imageRegistry) }}
{{- if $registry }}
{{- $repo = printf "%s/%s" $registry .Values.image.repository }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* imagePullSecrets of every pod: global.imagePullSecrets then imagePullSecrets,
     each a name or {name: ...}, without duplicates. */}}
{{- define "lfr-stream.imagePullSecrets" -}}
{{- $names := list }}
{{- range concat (default list ((.Values.global).imagePullSecrets)) (default list .Values.imagePullSecrets) }}
{{- $name := "" }}
{{- if kindIs "string" . }}{{ $name = . }}{{ else }}{{ $name = .name }}{{ end }}
{{- if and $name (not (has $name $names)) }}
{{- $names = append $names $name }}
{{- end }}
{{- end }}
{{- with $names -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Faust app id, which is the worker's consumer group: config.appId, else
     the release's full name, so that two releases on one Kafka never share a group. */}}
{{- define "lfr-stream.appId" -}}
{{- .Values.config.appId | default (include "lfr-stream.fullname" .) }}
{{- end }}

{{/* Settings ---------------------------------------------------------- */}}

{{/* A value as an environment string: YAML integers arrive as float64 and
     would otherwise print as 2.16e+07. */}}
{{- define "lfr-stream.envString" -}}
{{- if and (kindIs "float64" .) (eq (floor .) .) }}
{{- int64 . | toString }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/* Non-secret settings as a map LFR_<NAME> -> string, rendered as YAML.
     config.<camelCase> becomes LFR_<SNAKE_CASE>; null leaves it unset. */}}
{{- define "lfr-stream.configData" -}}
{{- $data := dict }}
{{- range $key, $value := .Values.config }}
{{- if not (kindIs "invalid" $value) }}
{{- $_ := set $data (printf "LFR_%s" (snakecase $key | upper)) (include "lfr-stream.envString" $value) }}
{{- end }}
{{- end }}
{{- $tls := .Values.kafkaTls }}
{{- if $tls.existingSecret }}
{{- if and $tls.caKey (kindIs "invalid" .Values.config.kafkaSslCafile) }}
{{- $_ := set $data "LFR_KAFKA_SSL_CAFILE" (printf "%s/%s" $tls.mountPath $tls.caKey) }}
{{- end }}
{{- if and $tls.certKey (kindIs "invalid" .Values.config.kafkaSslCertfile) }}
{{- $_ := set $data "LFR_KAFKA_SSL_CERTFILE" (printf "%s/%s" $tls.mountPath $tls.certKey) }}
{{- end }}
{{- if and $tls.keyKey (kindIs "invalid" .Values.config.kafkaSslKeyfile) }}
{{- $_ := set $data "LFR_KAFKA_SSL_KEYFILE" (printf "%s/%s" $tls.mountPath $tls.keyKey) }}
{{- end }}
{{- end }}
{{- $_ := set $data "LFR_APP_ID" (include "lfr-stream.appId" .) }}
{{- $_ := set $data "LFR_STATE_DIR" .Values.worker.persistence.mountPath }}
{{- /* A persistent volume only pays off with the RocksDB table store. */}}
{{- $_ := set $data "LFR_WORKER_STORE" (ternary "rocksdb://" "memory://" .Values.worker.persistence.enabled) }}
{{- $_ := set $data "LFR_WATCHLIST_PURGE_ON_END" (ternary "true" "false" .Values.worker.purgeOnEnd) }}
{{- toYaml $data }}
{{- end }}

{{/* Secret settings a process gets: value name -> env var, (dict "ctx" $
     "component" c) with c one of worker, sink, audit, hook, all. Least
     privilege: the worker matches and pseudonymises but never talks to
     ClickHouse; the sink writes as the ingest user and drops expired partitions
     as the admin, and never sees the pseudonym key; the audit only reads, as
     the analyst (the admin when no analyst user is set, as
     Settings.clickhouse_config falls back); the hook jobs create topics and
     tables as the admin. */}}
{{- define "lfr-stream.secretSettings" -}}
{{- $c := .component }}
{{- $analystUser := and (eq $c "audit") .ctx.Values.config.clickhouseAnalystUser }}
kafkaSaslPassword: LFR_KAFKA_SASL_PASSWORD
kafkaSslKeyPassword: LFR_KAFKA_SSL_KEY_PASSWORD
{{- if or (has $c (list "sink" "hook" "all")) (and (eq $c "audit") (not $analystUser)) }}
clickhousePassword: LFR_CLICKHOUSE_PASSWORD
{{- end }}
{{- if has $c (list "sink" "all") }}
clickhouseIngestPassword: LFR_CLICKHOUSE_INGEST_PASSWORD
{{- end }}
{{- if or (eq $c "all") $analystUser }}
clickhouseAnalystPassword: LFR_CLICKHOUSE_ANALYST_PASSWORD
{{- end }}
{{- if has $c (list "worker" "all") }}
pseudonymKey: LFR_PSEUDONYM_KEY
{{- end }}
{{- end }}

{{/* Data of the chart-created Secret (env var -> base64), only the values set:
     (dict "ctx" $ "component" "all"|"hook"). */}}
{{- define "lfr-stream.secretData" -}}
{{- $ctx := .ctx }}
{{- $settings := include "lfr-stream.secretSettings" (dict "ctx" $ctx "component" .component) | fromYaml }}
{{- range $key, $env := $settings }}
{{- $value := index $ctx.Values.secrets $key }}
{{- if $value }}
{{ $env }}: {{ $value | toString | b64enc | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Fails the render on settings that could never run. */}}
{{- define "lfr-stream.validate" -}}
{{- $s := .Values.secrets }}
{{- if and (not $s.existingSecret) (not $s.pseudonymKey) }}
{{- fail "secrets.pseudonymKey (or secrets.existingSecret) is required: it keys the subject_ref pseudonyms, so it must be set and kept stable" }}
{{- end }}
{{- $protocol := toString .Values.config.kafkaSecurityProtocol }}
{{- if hasPrefix "SASL_" $protocol }}
{{- if not (and .Values.config.kafkaSaslMechanism .Values.config.kafkaSaslUsername) }}
{{- fail "config.kafkaSecurityProtocol SASL_* needs config.kafkaSaslMechanism and config.kafkaSaslUsername" }}
{{- end }}
{{- if and (not $s.existingSecret) (not $s.kafkaSaslPassword) }}
{{- fail "config.kafkaSecurityProtocol SASL_* needs secrets.kafkaSaslPassword (or secrets.existingSecret)" }}
{{- end }}
{{- end }}
{{- $auto := .Values.worker.autoscaling }}
{{- if and $auto.hpa.enabled $auto.keda.enabled }}
{{- fail "worker.autoscaling: enable either hpa or keda, not both" }}
{{- end }}
{{- $partitions := int .Values.config.partitions }}
{{- range $kind := list "hpa" "keda" }}
{{- $a := index $auto $kind }}
{{- if $a.enabled }}
{{- if gt (int $a.maxReplicas) $partitions }}
{{- fail (printf "worker.autoscaling.%s.maxReplicas (%d) exceeds config.partitions (%d): workers beyond the partition count get no partition" $kind (int $a.maxReplicas) $partitions) }}
{{- end }}
{{- if gt (int $a.minReplicas) (int $a.maxReplicas) }}
{{- fail (printf "worker.autoscaling.%s.minReplicas exceeds maxReplicas" $kind) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* A PDB whose minAvailable is the whole fleet allows no voluntary eviction:
       every node drain would hang on it. Percentages are left to the user. */}}
{{- range $name := list "worker" "sink" }}
{{- $c := index $.Values $name }}
{{- $pdb := $c.pdb }}
{{- $count := not (or (kindIs "invalid" $pdb.minAvailable) (kindIs "string" $pdb.minAvailable)) }}
{{- if and $pdb.enabled $count (or (eq $name "worker") $.Values.sink.enabled) }}
{{- $replicas := int $c.replicas }}
{{- if and (eq $name "worker") (include "lfr-stream.workerAutoscaled" $) }}
{{- $replicas = int (ternary $auto.keda.minReplicas $auto.hpa.minReplicas $auto.keda.enabled) }}
{{- end }}
{{- if ge (int $pdb.minAvailable) $replicas }}
{{- fail (printf "%s.pdb.minAvailable (%d) must be below the %s's replicas (%d, or the autoscaler's minReplicas): otherwise no pod may ever be evicted and node drains hang" $name (int $pdb.minAvailable) $name $replicas) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.worker.autoscaling.hpa.enabled (kindIs "invalid" .Values.worker.autoscaling.hpa.targetCPUUtilizationPercentage) (kindIs "invalid" .Values.worker.autoscaling.hpa.targetMemoryUtilizationPercentage) }}
{{- fail "worker.autoscaling.hpa needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" }}
{{- end }}
{{- end }}

{{/* Pod pieces -------------------------------------------------------- */}}

{{/* envFrom of an lfr container: (dict "ctx" $ "hook" bool).
     The ConfigMap and Secret are referenced by name; hooks use their copies. */}}
{{- define "lfr-stream.envFrom" -}}
- configMapRef:
    name: {{ ternary (include "lfr-stream.hookConfigMapName" .ctx) (include "lfr-stream.configMapName" .ctx) .hook }}
{{- with .ctx.Values.extraEnvFrom }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Environment of an lfr container: (dict "ctx" $ "component" "worker"|"sink"|"audit"|"hook"). */}}
{{- define "lfr-stream.env" -}}
{{- $ctx := .ctx }}
{{- $hook := eq .component "hook" }}
{{- $secretName := ternary (include "lfr-stream.hookSecretName" $ctx) (include "lfr-stream.secretName" $ctx) $hook }}
{{- $settings := include "lfr-stream.secretSettings" (dict "ctx" $ctx "component" .component) | fromYaml }}
{{- $sasl := hasPrefix "SASL_" (toString $ctx.Values.config.kafkaSecurityProtocol) }}
{{- range $key, $env := $settings }}
{{- if $ctx.Values.secrets.existingSecret }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $secretName }}
      key: {{ index $ctx.Values.secrets.existingSecretKeys $key }}
      {{- /* Required: the pseudonym key, the SASL password under SASL, and the
             password of an ingest or analyst user that is set. */}}
      {{- $ingest := and $ctx.Values.config.clickhouseIngestUser (eq $key "clickhouseIngestPassword") }}
      {{- $analyst := and $ctx.Values.config.clickhouseAnalystUser (eq $key "clickhouseAnalystPassword") }}
      optional: {{ not (or (eq $key "pseudonymKey") (and $sasl (eq $key "kafkaSaslPassword")) $ingest $analyst) }}
{{- else if index $ctx.Values.secrets $key }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $secretName }}
      key: {{ $env }}
{{- end }}
{{- end }}
{{- if and (eq .component "worker") (eq (include "lfr-stream.workerKind" $ctx) "StatefulSet") }}
{{- /* Kafka static membership: a StatefulSet pod keeps its name across restarts,
       so a replaced worker rejoins as the same member without a rebalance. */}}
- name: LFR_WORKER_GROUP_INSTANCE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}
{{- with $ctx.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volumes every lfr pod has (the worker adds its state volume). */}}
{{- define "lfr-stream.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if .Values.kafkaTls.existingSecret }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafkaTls.existingSecret }}
    defaultMode: 288 # 0440: read-only for the owner and group
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "lfr-stream.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.kafkaTls.existingSecret }}
- name: kafka-tls
  mountPath: {{ .Values.kafkaTls.mountPath }}
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* An HTTP probe on the metrics port: (dict "probe" $values "path" "/healthz") */}}
{{- define "lfr-stream.httpProbe" -}}
httpGet:
  path: {{ .path }}
  port: metrics
initialDelaySeconds: {{ .probe.initialDelaySeconds }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
{{- end }}

{{/* Topology spread constraints with the component's labelSelector filled in. */}}
{{- define "lfr-stream.topologySpread" -}}
{{- $selector := include "lfr-stream.componentSelectorLabels" (dict "ctx" .ctx "component" .component) | fromYaml }}
{{- $out := list }}
{{- range .constraints }}
{{- $c := deepCopy . }}
{{- if not (hasKey $c "labelSelector") }}
{{- $_ := set $c "labelSelector" (dict "matchLabels" $selector) }}
{{- end }}
{{- $out = append $out $c }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* Checksum of the settings, so that pods restart when they change. */}}
{{- define "lfr-stream.configChecksum" -}}
{{- printf "%s\n%s" (include "lfr-stream.configData" .) (include "lfr-stream.secretData" (dict "ctx" . "component" "all")) | sha256sum }}
{{- end }}

{{/* Is the worker autoscaled (replicas then belong to the autoscaler)? */}}
{{- define "lfr-stream.workerAutoscaled" -}}
{{- if or .Values.worker.autoscaling.hpa.enabled .Values.worker.autoscaling.keda.enabled }}true{{ end }}
{{- end }}

{{/* The worker's replicas. Under an autoscaler, the count the running workload
     has now (helm would otherwise drop the field and Kubernetes reset it to 1),
     else the autoscaler's minimum; without one, worker.replicas. */}}
{{- define "lfr-stream.workerReplicas" -}}
{{- $a := .Values.worker.autoscaling }}
{{- if include "lfr-stream.workerAutoscaled" . }}
{{- $min := ternary $a.keda.minReplicas $a.hpa.minReplicas $a.keda.enabled | int }}
{{- $maxReplicas := ternary $a.keda.maxReplicas $a.hpa.maxReplicas $a.keda.enabled | int }}
{{- $current := 0 }}
{{- /* Both kinds: persistence switched on turns the Deployment into a StatefulSet. */}}
{{- range $apiKind := list "Deployment" "StatefulSet" }}
{{- $live := lookup "apps/v1" $apiKind $.Release.Namespace (printf "%s-worker" (include "lfr-stream.fullname" $)) }}
{{- $current = max $current (int (dig "spec" "replicas" 0 $live)) }}
{{- end }}
{{- min (max $current $min) $maxReplicas }}
{{- else }}
{{- .Values.worker.replicas }}
{{- end }}
{{- end }}

{{- define "lfr-stream.workerKind" -}}
{{- ternary "StatefulSet" "Deployment" .Values.worker.persistence.enabled }}
{{- end }}

{{/* Egress rules of the release's pods (Kafka, ClickHouse, DNS, extraEgress),
     shared by the NetworkPolicy and its hook copy. */}}
{{- define "lfr-stream.networkPolicyEgress" -}}
{{- $np := .Values.networkPolicy }}
{{- $kafkaPorts := $np.kafka.ports }}
{{- if not $kafkaPorts }}
{{- range (splitList "," (toString .Values.config.kafkaBootstrap)) }}
{{- $port := int (last (splitList ":" (trim .))) }}
{{- if not (has $port $kafkaPorts) }}
{{- $kafkaPorts = append $kafkaPorts $port }}
{{- end }}
{{- end }}
{{- end }}
{{- $clickhousePorts := $np.clickhouse.ports }}
{{- if not $clickhousePorts }}
{{- $clickhousePorts = list (int .Values.config.clickhousePort) (int .Values.config.clickhouseHttpPort) | uniq }}
{{- end }}
- ports:
    {{- range $kafkaPorts }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
  {{- with $np.kafka.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
- ports:
    {{- range $clickhousePorts }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
  {{- with $np.clickhouse.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
  {{- with $np.dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- with $np.extraEgress }}
{{- toYaml . | nindent 0 }}
{{- end }}
{{- end }}
