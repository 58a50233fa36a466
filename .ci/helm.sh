#!/usr/bin/env bash
# Offline checks of the Helm chart (helm/lfr-stream).
#
#   bash .ci/helm.sh            install helm if needed, lint + render every ci/*-values.yaml,
#                               then run the chart's pytest suite (tests/helm) against that helm
#   bash .ci/helm.sh lint       install helm if needed, lint + render only (`make test` runs
#                               tests/helm with the rest of the suite)
#   bash .ci/helm.sh install    only make sure helm is built; print its path on stdout
#   bash .ci/helm.sh sync-files copy deploy/ dashboards and rules into the chart (Helm reads
#                               only files inside the chart; tests/helm checks the copies)
#
# helm is built from the Go module proxy (no binary downloads here) into a cached GOBIN,
# so only the first run pays for the build (~1.5 min on 2 cores). It is linked with its
# own version (a plain `go install` reports "v3.22") and with $KUBE_VERSION as the
# Kubernetes version `helm template` and `helm lint` assume without --kube-version
# (a plain build assumes 1.20, which the chart's kubeVersion refuses).
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
KUBE_VERSION="${KUBE_VERSION:-1.37.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/helm/lfr-stream"
TOOLS="${LFR_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lfr-stream/tools}"
KUBE_MAJOR="${KUBE_VERSION%%.*}"
KUBE_MINOR="${KUBE_VERSION#*.}"
KUBE_MINOR="${KUBE_MINOR%%.*}"
GOBIN_DIR="$TOOLS/helm-$HELM_VERSION-k$KUBE_MAJOR.$KUBE_MINOR"
HELM="$GOBIN_DIR/helm"
OUT="${HELM_RENDER_DIR:-$ROOT/build/helm}"

log() { printf 'helm.sh: %s\n' "$*" >&2; }

install_helm() {
  if [ -x "$HELM" ]; then
    return 0
  fi
  command -v go >/dev/null || { log "go is required to build helm"; exit 1; }
  log "building helm $HELM_VERSION into $GOBIN_DIR"
  mkdir -p "$GOBIN_DIR"
  # Build outside the repo so the project's go.mod (if any) does not interfere.
  (cd "$TOOLS" && GOBIN="$GOBIN_DIR" GOFLAGS=-buildvcs=false \
    go install -ldflags "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
      -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$KUBE_MAJOR \
      -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$KUBE_MINOR" \
      "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") >&2
}

sync_files() {
  local src dst
  src="$ROOT/deploy/grafana/dashboards"
  dst="$CHART/files/dashboards"
  mkdir -p "$dst"
  find "$dst" -maxdepth 1 -name '*.json' -delete
  if compgen -G "$src/*.json" >/dev/null; then
    cp -p "$src"/*.json "$dst"/
  fi
  dst="$CHART/files/prometheus"
  mkdir -p "$dst"
  rm -f "$dst/rules.yml"
  if [ -f "$ROOT/deploy/prometheus/rules.yml" ]; then
    cp -p "$ROOT/deploy/prometheus/rules.yml" "$dst/rules.yml"
  fi
  log "chart files synced from deploy/"
}

lint() {
  install_helm
  mkdir -p "$OUT"
  local values name
  for values in "$CHART"/ci/*-values.yaml; do
    name="$(basename "$values" -values.yaml)"
    log "lint --strict: $name"
    "$HELM" lint --strict --kube-version "$KUBE_VERSION" "$CHART" -f "$values" >&2
    log "template: $name -> $OUT/$name.yaml"
    "$HELM" template lfr "$CHART" --namespace lfr --kube-version "$KUBE_VERSION" \
      -f "$values" >"$OUT/$name.yaml"
  done
}

check() {
  lint
  log "pytest tests/helm"
  cd "$ROOT"
  HELM="$HELM" KUBE_VERSION="$KUBE_VERSION" "${PYTHON:-$ROOT/.venv/bin/python}" -m pytest -q tests/helm
}

case "${1:-check}" in
  install) install_helm; echo "$HELM" ;;
  sync-files) sync_files ;;
  lint) lint ;;
  check) check ;;
  *) log "usage: $0 [check|lint|install|sync-files]"; exit 2 ;;
esac
