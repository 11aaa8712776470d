#!/usr/bin/env bash
# `make run`: serves the console on http://127.0.0.1:8080. Uses the kubeconfig given
# (--kubeconfig, SIGNALBOX_KUBECONFIG or KUBECONFIG) when its API server answers; otherwise
# starts the local dev cluster (with istiod and simulated sidecars) and uses that, pointing
# --istiod-url at the dev cluster's istiod.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
devcluster="$root/deploy/devcluster/devcluster"
kubeconfig="${SIGNALBOX_KUBECONFIG:-${KUBECONFIG:-}}"
for arg in "$@"; do
  case "$arg" in --kubeconfig=*) kubeconfig="${arg#--kubeconfig=}" ;; esac
done

reachable() {
  local kubectl
  kubectl="$(command -v kubectl || echo "$root/deploy/devcluster/.bin/kubectl")"
  [[ -n "$1" && -f "$1" ]] && "$kubectl" --kubeconfig "$1" --request-timeout=3s get --raw /readyz >/dev/null 2>&1
}

cargo build --release --locked
if ! reachable "$kubeconfig"; then
  [[ -n "$kubeconfig" ]] && echo "run: the API server of $kubeconfig does not answer; using the dev cluster" >&2
  "$devcluster" up
  "$devcluster" sidecars
  kubeconfig="$("$devcluster" kubeconfig)"
  export SIGNALBOX_ISTIOD_URL="${SIGNALBOX_ISTIOD_URL:-$("$devcluster" istiod-monitoring)}"
fi
export SIGNALBOX_KUBECONFIG="$kubeconfig"
exec "$root/target/release/signalbox" "$@"
