#!/usr/bin/env bash
# `make bench`: release build, dev cluster (started and stopped here if it was not running),
# then every benchmark; figures are printed, and recorded by hand in BENCHMARKS.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
devcluster="$root/deploy/devcluster/devcluster"
export SIGNALBOX_TEST_KUBECONFIG="$("$devcluster" kubeconfig)"
command -v wrk >/dev/null || "$root/scripts/install-deps.sh"
cargo build --release --locked
if ! "$devcluster" status >/dev/null 2>&1; then
  trap '"$devcluster" down' EXIT
  "$devcluster" up
fi
cargo bench --locked --bench overview
cargo bench --locked --bench audit
cargo bench --locked --bench propagation
cargo bench --locked --bench floor
cargo bench --locked --bench route_change
cargo bench --locked --bench namespaces
