"""The wiring that matters: secrets, replicas, hook order, probes, security, network."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from tests.helm.conftest import CHART, Rendered, container_env, is_hook, pod_spec

SECRET_ENV = {"LFR_KAFKA_SASL_PASSWORD", "LFR_CLICKHOUSE_PASSWORD", "LFR_PSEUDONYM_KEY"}
Render = Callable[..., Rendered]


def _ci_values(name: str) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / f"ci/{name}-values.yaml").read_text())
    return values


# --- secrets -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["minimal", "production", "multisite"])
def test_no_secret_in_any_configmap(scenarios: dict[str, Rendered], name: str) -> None:
    rendered = scenarios[name]
    secret_values = [
        v
        for k, v in _ci_values(name).get("secrets", {}).items()
        if isinstance(v, str) and v and k != "existingSecret"
    ]
    for cm in rendered.of_kind("ConfigMap"):
        data = cm.get("data") or {}
        assert not SECRET_ENV & set(data), cm["metadata"]["name"]
        text = yaml.safe_dump(data)
        for value in secret_values:
            assert value not in text, f"secret value in ConfigMap {cm['metadata']['name']}"
    # Nowhere in plain text at all: only base64 inside Secrets.
    non_secrets = [o for o in rendered.objects if o["kind"] != "Secret"]
    for value in secret_values:
        assert value not in yaml.safe_dump_all(non_secrets)


def test_secret_settings_come_from_a_secret(scenarios: dict[str, Rendered]) -> None:
    minimal = scenarios["minimal"]
    secret = minimal.one("Secret", "-stream-secrets")
    key = base64.b64decode(secret["data"]["LFR_PSEUDONYM_KEY"]).decode()
    assert key == _ci_values("minimal")["secrets"]["pseudonymKey"]
    worker = minimal.one("Deployment", "-worker")
    env = container_env(minimal, worker)
    assert env["LFR_PSEUDONYM_KEY"] == f"<secret {secret['metadata']['name']}/LFR_PSEUDONYM_KEY>"


def test_existing_secret_is_used_and_none_created(scenarios: dict[str, Rendered]) -> None:
    production = scenarios["production"]
    assert production.of_kind("Secret") == []
    keys = _ci_values("production")["secrets"]["existingSecretKeys"]
    for obj in production.workloads():
        env = {e["name"]: e for e in pod_spec(obj)["containers"][0]["env"]}
        ref = env["LFR_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {
            "name": "lfr-stream-credentials",
            "key": keys["kafkaSaslPassword"],
            "optional": False,
        }
    worker = production.one("StatefulSet", "-worker")
    env = {e["name"]: e for e in pod_spec(worker)["containers"][0]["env"]}
    assert env["LFR_PSEUDONYM_KEY"]["valueFrom"]["secretKeyRef"]["optional"] is False


def test_clickhouse_role_passwords_from_the_existing_secret(scenarios: dict[str, Rendered]) -> None:
    production = scenarios["production"]
    keys = _ci_values("production")["secrets"]["existingSecretKeys"]
    sink = production.one("Deployment", "-sink")
    env = {e["name"]: e for e in pod_spec(sink)["containers"][0]["env"]}
    # production names an ingest user, so a Secret without its password must not start
    assert env["LFR_CLICKHOUSE_INGEST_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "lfr-stream-credentials",
        "key": keys["clickhouseIngestPassword"],
        "optional": False,
    }
    # only the audit reads as the analyst (required: production names an analyst user),
    # and it gets no admin password then
    for obj in production.workloads():
        names = {e["name"] for e in pod_spec(obj)["containers"][0].get("env", [])}
        is_audit = obj["metadata"]["name"].endswith("-audit")
        assert ("LFR_CLICKHOUSE_ANALYST_PASSWORD" in names) == is_audit
    audit = production.one("Deployment", "-audit")
    env = {e["name"]: e for e in pod_spec(audit)["containers"][0]["env"]}
    assert env["LFR_CLICKHOUSE_ANALYST_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "lfr-stream-credentials",
        "key": keys["clickhouseAnalystPassword"],
        "optional": False,
    }
    assert "LFR_CLICKHOUSE_PASSWORD" not in env
    config = production.one("ConfigMap", "-stream-config")["data"]
    assert config["LFR_CLICKHOUSE_INGEST_USER"] == "lfr_ingest"
    assert "LFR_CLICKHOUSE_INGEST_PASSWORD" not in config
    for job in production.of_kind("Job"):
        names = {e["name"] for e in pod_spec(job)["containers"][0].get("env", [])}
        assert not names & {"LFR_CLICKHOUSE_INGEST_PASSWORD", "LFR_CLICKHOUSE_ANALYST_PASSWORD"}


def test_clickhouse_role_passwords_optional_without_their_users(render: Render) -> None:
    rendered = render({"secrets": {"existingSecret": "creds"}})
    sink = rendered.one("Deployment", "-sink")
    env = {e["name"]: e for e in pod_spec(sink)["containers"][0]["env"]}
    assert env["LFR_CLICKHOUSE_INGEST_PASSWORD"]["valueFrom"]["secretKeyRef"]["optional"] is True


# --- replicas and scaling --------------------------------------------------------


@pytest.mark.parametrize("persistence", [False, True])
@pytest.mark.parametrize("scaler", ["hpa", "keda"])
def test_autoscaled_replicas_start_at_the_minimum(
    render: Render, scaler: str, persistence: bool
) -> None:
    # Offline there is no running worker to keep the count of (tests/helm/test_apiserver.py
    # checks that an upgrade keeps it): a fresh install starts at the autoscaler's minimum.
    kind = "StatefulSet" if persistence else "Deployment"
    rendered = render(
        {
            "worker": {
                "replicas": 3,
                "persistence": {"enabled": persistence},
                "autoscaling": {scaler: {"enabled": True, "minReplicas": 2}},
            }
        }
    )
    worker = rendered.one(kind, "-worker")
    assert worker["spec"]["replicas"] == 2
    target = rendered.one("HorizontalPodAutoscaler" if scaler == "hpa" else "ScaledObject")
    assert target["spec"]["scaleTargetRef"]["kind"] == kind
    assert target["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]


def test_replicas_set_without_autoscaling(scenarios: dict[str, Rendered]) -> None:
    worker = scenarios["multisite"].one("Deployment", "-worker")
    assert worker["spec"]["replicas"] == _ci_values("multisite")["worker"]["replicas"]
    assert scenarios["multisite"].of_kind("ScaledObject") == []


def test_keda_watches_the_faust_consumer_group(scenarios: dict[str, Rendered]) -> None:
    production = scenarios["production"]
    config = _ci_values("production")["config"]
    scaled = production.one("ScaledObject")
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "kafka"
    assert (
        trigger["metadata"]["consumerGroup"]
        == production.one("ConfigMap", "-stream-config")["data"]["LFR_APP_ID"]
    )
    assert trigger["metadata"]["bootstrapServers"] == config["kafkaBootstrap"]
    assert trigger["metadata"]["topic"] == "lfr.detections"
    assert trigger["metadata"]["sasl"] == "scram_sha512"
    assert trigger["metadata"]["tls"] == "enable"
    assert scaled["spec"]["maxReplicaCount"] <= config["partitions"]
    auth = production.one("TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    params = {r["parameter"] for r in auth["spec"]["secretTargetRef"]} | {
        e["parameter"] for e in auth["spec"]["env"]
    }
    assert params == {"username", "password", "ca"}


# --- hooks -------------------------------------------------------------------------


def _hook_events(obj: dict[str, Any]) -> set[str]:
    return set(obj["metadata"]["annotations"]["helm.sh/hook"].split(","))


def _hook_weight(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["annotations"].get("helm.sh/hook-weight", "0"))


def _references(obj: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(kind, name) of every ConfigMap, Secret and ServiceAccount a pod refers to."""
    spec = pod_spec(obj)
    if "serviceAccountName" in spec:
        yield "ServiceAccount", spec["serviceAccountName"]
    for container in spec["containers"] + spec.get("initContainers", []):
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                yield "ConfigMap", source["configMapRef"]["name"]
            if "secretRef" in source:
                yield "Secret", source["secretRef"]["name"]
        for var in container.get("env", []):
            ref = var.get("valueFrom", {})
            if "configMapKeyRef" in ref:
                yield "ConfigMap", ref["configMapKeyRef"]["name"]
            if "secretKeyRef" in ref:
                yield "Secret", ref["secretKeyRef"]["name"]
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"]["name"]
        if "secret" in volume:
            yield "Secret", volume["secret"]["secretName"]


@pytest.mark.parametrize("name", ["minimal", "production", "multisite"])
def test_hooks_run_before_the_workloads_and_only_use_what_exists(
    scenarios: dict[str, Rendered], name: str
) -> None:
    rendered = scenarios[name]
    jobs = [o for o in rendered.of_kind("Job")]
    assert {j["metadata"]["name"].rsplit("-", 1)[1] for j in jobs} == {"topics", "migrate"}
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in rendered.objects}
    for job in jobs:
        assert is_hook(job)
        assert {"pre-install", "pre-upgrade"} <= _hook_events(job)
        for ref in _references(job):
            target = by_name.get(ref)
            if target is None:
                continue  # made outside the chart (existingSecret): there before install
            # A plain release object does not exist yet when a pre-install hook runs.
            assert is_hook(target), f"{job['metadata']['name']} needs non-hook {ref}"
            assert "pre-install" in _hook_events(target), ref
            assert _hook_weight(target) < _hook_weight(job), f"{ref} not created first"
    topics, migrate = sorted(jobs, key=lambda j: "migrate" in j["metadata"]["name"])
    assert _hook_weight(topics) < _hook_weight(migrate)
    # The hook copy of the settings is the same data the workloads get.
    assert (
        rendered.one("ConfigMap", "-hook-config")["data"]
        == rendered.one("ConfigMap", "-stream-config")["data"]
    )


def test_hook_jobs_wait_for_the_services(scenarios: dict[str, Rendered]) -> None:
    for job in scenarios["minimal"].of_kind("Job"):
        args = pod_spec(job)["containers"][0]["args"]
        assert "--wait" in args and int(args[args.index("--wait") + 1]) > 0
        assert pod_spec(job)["restartPolicy"] == "Never"
        # their own ServiceAccount, a hook itself (checked above), not the namespace's default
        assert pod_spec(job)["serviceAccountName"] == "lfr-lfr-stream-hooks"


def test_hook_jobs_never_get_the_pseudonym_key(scenarios: dict[str, Rendered]) -> None:
    for rendered in scenarios.values():
        for job in rendered.of_kind("Job"):
            assert "LFR_PSEUDONYM_KEY" not in container_env(rendered, job)
        hook_secret = rendered.find("Secret", "-hook-secrets")
        if hook_secret:
            assert "LFR_PSEUDONYM_KEY" not in hook_secret["data"]


# --- workloads -----------------------------------------------------------------------


def test_memory_store_worker_is_a_deployment_with_scratch_state(
    scenarios: dict[str, Rendered],
) -> None:
    worker = scenarios["minimal"].one("Deployment", "-worker")
    volumes = {v["name"]: v for v in pod_spec(worker)["volumes"]}
    assert "emptyDir" in volumes["state"]
    assert scenarios["minimal"].of_kind("StatefulSet") == []


@pytest.mark.parametrize(
    ("name", "kind", "store"),
    [("minimal", "Deployment", "memory://"), ("production", "StatefulSet", "rocksdb://")],
)
def test_worker_table_store_follows_persistence(
    scenarios: dict[str, Rendered], name: str, kind: str, store: str
) -> None:
    rendered = scenarios[name]
    env = container_env(rendered, rendered.one(kind, "-worker"))
    assert env["LFR_WORKER_STORE"] == store
    # the watchlist must not outlive its deployment
    assert env["LFR_WATCHLIST_PURGE_ON_END"] == "true"


def test_persistent_worker_is_a_statefulset_with_a_claim(scenarios: dict[str, Rendered]) -> None:
    production = scenarios["production"]
    worker = production.one("StatefulSet", "-worker")
    claims = worker["spec"]["volumeClaimTemplates"]
    assert [c["metadata"]["name"] for c in claims] == ["state"]
    assert claims[0]["spec"]["resources"]["requests"]["storage"] == "20Gi"
    mounts = {m["name"]: m["mountPath"] for m in pod_spec(worker)["containers"][0]["volumeMounts"]}
    assert mounts["state"] == container_env(production, worker)["LFR_STATE_DIR"]
    service = production.one("Service", "-worker")
    assert worker["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"


@pytest.mark.parametrize(
    ("component", "setting"),
    [("worker", "LFR_WORKER_METRICS_PORT"), ("sink", "LFR_SINK_METRICS_PORT")],
)
def test_probes_use_the_process_http_port(render: Render, component: str, setting: str) -> None:
    rendered = render({"config": {"workerMetricsPort": 9301, "sinkMetricsPort": 9302}})
    obj = rendered.one("Deployment", f"-{component}")
    container = pod_spec(obj)["containers"][0]
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
    assert str(port) == container_env(rendered, obj)[setting]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    # the startup probe waits for readiness (a probe on /healthz would gate nothing);
    # off for the sink, which is unready whenever ClickHouse is down
    if component == "worker":
        assert container["startupProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    else:
        assert "startupProbe" not in container
    service = rendered.one("Service", f"-{component}")
    assert service["spec"]["ports"][0]["port"] == port


@pytest.mark.parametrize("name", ["minimal", "production", "multisite"])
def test_every_container_is_locked_down(scenarios: dict[str, Rendered], name: str) -> None:
    for obj in scenarios[name].workloads():
        spec = pod_spec(obj)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"] + spec.get("initContainers", []):
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["runAsNonRoot"] is True
            assert ctx["capabilities"]["drop"] == ["ALL"]
            assert "add" not in ctx["capabilities"]
            # A writable scratch dir, since the root filesystem is read-only.
            assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}  # noqa: S108
            assert container["resources"]["requests"]


def test_pods_carry_spread_and_placement_settings(scenarios: dict[str, Rendered]) -> None:
    multisite = scenarios["multisite"]
    worker = multisite.one("Deployment", "-worker")
    spec = pod_spec(worker)
    spread = spec["topologySpreadConstraints"]
    assert spread[0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread[0]["labelSelector"]["matchLabels"] == worker["spec"]["selector"]["matchLabels"]
    assert spec["nodeSelector"] == {"example.org/pool": "streaming"}
    assert spec["tolerations"][0]["key"] == "dedicated"
    production = scenarios["production"].one("StatefulSet", "-worker")
    assert production["spec"]["template"]["metadata"]["annotations"]["example.org/team"]


def test_pdbs_select_their_workloads(scenarios: dict[str, Rendered]) -> None:
    rendered = scenarios["multisite"]
    for component in ("worker", "sink"):
        pdb = rendered.one("PodDisruptionBudget", f"-{component}")
        workload = rendered.one("Deployment", f"-{component}")
        assert pdb["spec"]["selector"] == workload["spec"]["selector"]
    assert rendered.one("PodDisruptionBudget", "-worker")["spec"]["maxUnavailable"] == 2


def test_config_change_rolls_the_pods(render: Render) -> None:
    def checksum(values: dict[str, Any]) -> str:
        worker = render(values).one("Deployment", "-worker")
        return str(worker["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum({}) != checksum({"config": {"topicAlerts": "lfr.alerts.v2"}})
    assert checksum({}) != checksum({"secrets": {"pseudonymKey": "rotated-key" * 3}})


def test_extra_env_volumes_and_objects(scenarios: dict[str, Rendered], render: Render) -> None:
    multisite = scenarios["multisite"]
    notes = multisite.one("ConfigMap", "-site-notes")
    assert notes["metadata"]["name"] == "lfr-site-notes"  # passed through tpl
    for obj in multisite.workloads():
        assert container_env(multisite, obj)["TZ"] == "UTC"
    rendered = render(
        {
            "extraVolumes": [{"name": "certs", "emptyDir": {}}],
            "extraVolumeMounts": [{"name": "certs", "mountPath": "/certs"}],
        }
    )
    for obj in rendered.workloads():
        assert "certs" in {v["name"] for v in pod_spec(obj)["volumes"]}


# --- network -------------------------------------------------------------------------


def test_network_policy_allows_only_kafka_clickhouse_dns_and_scrapes(
    scenarios: dict[str, Rendered],
) -> None:
    policy = scenarios["production"].one("NetworkPolicy", "-lfr-stream")
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ports = {(p["port"], p["protocol"]) for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports == {(9093, "TCP"), (9440, "TCP"), (8443, "TCP"), (53, "UDP"), (53, "TCP")}
    assert all(rule.get("to") for rule in policy["spec"]["egress"]), "egress to anywhere"
    ingress, from_test_pod = policy["spec"]["ingress"]
    assert from_test_pod["from"][0]["podSelector"]["matchLabels"][
        "app.kubernetes.io/component"
    ] == ("test")
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert ingress["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    # The policy covers every pod of the release, the hook jobs included.
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for obj in scenarios["production"].workloads():
        labels = obj["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()


def test_network_policy_derives_kafka_ports_from_bootstrap(render: Render) -> None:
    rendered = render(
        {"networkPolicy": {"enabled": True}, "config": {"kafkaBootstrap": "a:9092,b:9092,c:19092"}}
    )
    egress = rendered.one("NetworkPolicy", "-lfr-stream")["spec"]["egress"]
    assert [p["port"] for p in egress[0]["ports"]] == [9092, 19092]
    assert [p["port"] for p in egress[1]["ports"]] == [9000, 8123]
