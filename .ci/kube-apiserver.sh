#!/usr/bin/env bash
# A real Kubernetes API server for the chart tests (tests/helm/test_apiserver.py).
#
#   bash .ci/kube-apiserver.sh install   build kube-apiserver if needed; print its path on stdout
#   bash .ci/kube-apiserver.sh path      print the path it is (or would be) built to
#
# No binary downloads here, and `go install k8s.io/kubernetes/cmd/kube-apiserver@v1.34.x`
# is refused because k8s.io/kubernetes replaces its staging modules (k8s.io/api,
# k8s.io/apiserver, ...) with local directories. A small wrapper module requires
# k8s.io/kubernetes and replaces every staging module with its published v0.<minor>.<patch>
# release instead; the staging list is read from kubernetes' own go.mod in the module cache.
# The build is cached like helm's (.ci/helm.sh): the first run takes ~5-20 min on 2 cores
# (~120 MB of modules), every later run finds the binary and returns at once.
# etcd comes from Debian (deploy/local/prerequisites.sh, LFR_PREREQS_EXTRA=kube).
set -euo pipefail

KUBE_APISERVER_VERSION="${KUBE_APISERVER_VERSION:-v1.34.4}"
TOOLS="${LFR_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lfr-stream/tools}"
DIR="$TOOLS/kube-apiserver-$KUBE_APISERVER_VERSION"
BIN="$DIR/kube-apiserver"

log() { printf 'kube-apiserver.sh: %s\n' "$*" >&2; }

install_apiserver() {
  if [ -x "$BIN" ]; then
    return 0
  fi
  command -v go >/dev/null || { log "go is required to build kube-apiserver"; exit 1; }
  local started version staging major minor mod work gomod
  started=$(date +%s)
  version="$KUBE_APISERVER_VERSION"
  # v1.34.4 -> staging modules at v0.34.4
  staging="v0.${version#v1.}"
  major=1
  minor="${version#v1.}"
  minor="${minor%%.*}"
  log "building kube-apiserver $version into $DIR (first run only)"
  mkdir -p "$DIR"
  work="$(mktemp -d "$DIR/build.XXXXXX")"
  trap 'rm -rf "$work"' RETURN
  export GOFLAGS=-buildvcs=false
  (
    cd "$work"
    gomod="$(go mod download -json "k8s.io/kubernetes@$version" |
      sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
    [ -f "$gomod" ] || { log "k8s.io/kubernetes@$version has no go.mod in the module cache"; exit 1; }
    {
      echo "module lfr-stream.local/kube-apiserver"
      echo
      echo "go $(go env GOVERSION | sed 's/^go\([0-9]*\.[0-9]*\).*/\1/')"
      echo
      echo "require k8s.io/kubernetes $version"
      echo
      echo "replace ("
      # every `k8s.io/<name> => ./staging/src/k8s.io/<name>` becomes the published release
      sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/src/.*$#\1#p' "$gomod" |
        sort -u | while read -r mod; do
          printf '\t%s => %s %s\n' "$mod" "$mod" "$staging"
        done
      echo ")"
    } >go.mod
    [ "$(grep -c ' => ' go.mod)" -gt 10 ] || { log "no staging replaces found in $gomod"; exit 1; }
    go get "k8s.io/kubernetes/cmd/kube-apiserver@$version" >&2
    go build -trimpath -o "$BIN.tmp" -ldflags "-s -w \
      -X k8s.io/component-base/version.gitVersion=$version \
      -X k8s.io/component-base/version.gitMajor=$major \
      -X k8s.io/component-base/version.gitMinor=$minor \
      -X k8s.io/component-base/version.gitTreeState=clean \
      -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z" \
      k8s.io/kubernetes/cmd/kube-apiserver >&2
  )
  mv "$BIN.tmp" "$BIN"
  log "built $("$BIN" --version) in $(($(date +%s) - started)) s"
}

case "${1:-install}" in
  install) install_apiserver; echo "$BIN" ;;
  path) echo "$BIN" ;;
  *) log "usage: $0 [install|path]"; exit 2 ;;
esac
