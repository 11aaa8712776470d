#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks need, only those missing: headless
# Chromium and its driver (browser tests), Prometheus (canary metrics tests), sqlite3,
# openssl and curl (dev cluster certificates and probes), wrk (the throughput benchmark).
# Go and Rust come with the machine.
set -euo pipefail
declare -A wanted=(
  [chromium]=chromium
  [chromedriver]=chromium-driver
  [prometheus]=prometheus
  [sqlite3]=sqlite3
  [openssl]=openssl
  [curl]=curl
  [wrk]=wrk
)
missing=()
for command in "${!wanted[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("${wanted[$command]}")
done
for tool in go cargo; do
  command -v "$tool" >/dev/null 2>&1 || { echo "install-deps: $tool is required on PATH" >&2; exit 1; }
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  sudo_cmd=""
  [[ "$(id -u)" == 0 ]] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
