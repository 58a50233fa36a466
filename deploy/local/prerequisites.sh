#!/usr/bin/env bash
# The system packages the local stack and the tests need, installed once.
#
#   bash deploy/local/prerequisites.sh           install what is missing (as root, with apt)
#   bash deploy/local/prerequisites.sh --check   list what is missing; exit 1 if anything is
#
# `make demo`, `make test` and `.ci/run` all call this script, so a fresh Debian 12
# machine needs nothing but Python 3.11+, git and make before the README's two commands.
# Not root, or no apt: one line naming the exact command to run, exit 1.
# LFR_PREREQS_EXTRA adds groups: "browser" (chromium, for the HTML report's browser
# test) and "kube" (etcd-server, for the chart tests against a real API server).
set -euo pipefail

check_only=0
[ "${1:-}" = "--check" ] && check_only=1

# command -> Debian package
declare -A wanted=(
  [clickhouse-server]=clickhouse-server
  [clickhouse-client]=clickhouse-client
  [prometheus]=prometheus
  [promtool]=prometheus
  [java]=openjdk-17-jre-headless
  [mvn]=maven
)
for group in ${LFR_PREREQS_EXTRA:-}; do
  case "$group" in
    browser) wanted[chromium]=chromium ;;
    kube) wanted[etcd]=etcd-server ;;
    *) echo "prerequisites.sh: unknown group '$group' in LFR_PREREQS_EXTRA (browser, kube)" >&2; exit 2 ;;
  esac
done

missing=()
for cmd in "${!wanted[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${wanted[$cmd]}")
done
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
# one entry per package, stable order
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sed '/^$/d' | sort -u)

if ((${#missing[@]} == 0)); then
  exit 0
fi
if ((check_only)); then
  printf 'missing: %s\n' "${missing[*]}"
  exit 1
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "lfr: missing system packages; run: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "prerequisites.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the services it installs; the project runs its own copies on its own
# ports and data directories, so the system-wide ones only hold ports and memory.
for svc in clickhouse-server prometheus prometheus-node-exporter etcd; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done
echo "prerequisites.sh: installed ${missing[*]}" >&2
