#!/usr/bin/env bash
# The vendored htmx must be exactly the npm package's file at the version package.json pins.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
[[ -d node_modules/htmx.org ]] || npm ci --no-audit --no-fund --silent
cmp -s node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js || {
  echo "static/vendor/htmx.min.js differs from the htmx.org package; run make vendor" >&2
  exit 1
}
