#!/usr/bin/env bash
# Builds the pinned control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) into .bin/. Rebuilds only when go.mod/go.sum change:
# the stamp file records the hash of the pins the binaries were built from.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="$here/.bin"
stamp="$bin/.pins"
pins="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -d' ' -f1)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$pins" ]]; then
  exit 0
fi

command -v go >/dev/null || { echo "devcluster: Go toolchain not found on PATH" >&2; exit 1; }
mkdir -p "$bin"
rm -f "$stamp"
cd "$here"
declare -A packages=(
  [etcd]=go.etcd.io/etcd/server/v3
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [kwok]=sigs.k8s.io/kwok/cmd/kwok
)
start=$SECONDS
for name in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok; do
  echo "devcluster: building $name (${packages[$name]})" >&2
  # -trimpath and stripped symbols keep the binaries small; CGO off as upstream releases do.
  CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags='-s -w' -o "$bin/$name" "${packages[$name]}"
done
echo "$pins" > "$stamp"
echo "devcluster: built control plane in $((SECONDS - start))s" >&2
