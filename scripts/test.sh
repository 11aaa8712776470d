#!/usr/bin/env bash
# `make test`: builds what is missing, starts the dev cluster, runs every test (unit,
# integration, browser) and stops the cluster again, also when a test fails.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
devcluster="$root/deploy/devcluster/devcluster"
export SIGNALBOX_TEST_KUBECONFIG="$("$devcluster" kubeconfig)"
# The shared fixtures sit beside the checkout (../shared). A clone made elsewhere, such as
# `git clone . /tmp/fresh`, reads them beside the repository it was cloned from.
if [[ -z "${SIGNALBOX_FIXTURES:-}" && ! -d "$root/../shared/fixtures" ]]; then
  origin="$(git -C "$root" remote get-url origin 2>/dev/null || true)"
  if [[ -n "$origin" && -d "$origin/../shared/fixtures" ]]; then
    export SIGNALBOX_FIXTURES="$(cd "$origin/../shared/fixtures" && pwd)"
  fi
fi

"$root/scripts/install-deps.sh"
"$root/scripts/check-vendor.sh"
cargo build --all-targets --locked
trap '"$devcluster" down' EXIT
"$devcluster" up
# Benchmarks (harness = false) are left to `make bench`.
cargo test --lib --bins --tests --locked --no-fail-fast -- "$@"
