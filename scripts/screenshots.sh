#!/usr/bin/env bash
# `make screenshots`: every page with its picture (deploy with the walkthrough preview,
# overview with the graph, routing with the bars, an audit entry with bars before and
# after, the canary's step strip and sparklines from a real Prometheus) in headless
# Chromium, as PNGs in target/screenshots/ (ignored by git). The browser test that checks
# those pictures takes them. Starts the dev cluster when it does not answer, and then
# stops it again.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
devcluster="$root/deploy/devcluster/devcluster"
kubeconfig="$("$devcluster" kubeconfig)"
export SIGNALBOX_TEST_KUBECONFIG="$kubeconfig"

"$root/scripts/install-deps.sh"
kubectl="$root/deploy/devcluster/.bin/kubectl"
if ! [[ -x "$kubectl" && -f "$kubeconfig" ]] \
  || ! "$kubectl" --kubeconfig "$kubeconfig" --request-timeout=3s get --raw /readyz >/dev/null 2>&1; then
  trap '"$devcluster" down' EXIT
  "$devcluster" up
fi
cargo test --locked --test it -- --exact browser::every_page_shows_its_picture_of_the_live_state
ls -1 "$root"/target/screenshots/*.png
