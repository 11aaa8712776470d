#!/usr/bin/env bash
# Builds the pinned control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) into .bin/, and istiod (pilot-discovery) with the tests'
# xDS client from the separate module in istiod/, so Istio's newer dependencies never move
# the Kubernetes pins. Each set rebuilds only when its pins (go.mod/go.sum, its sources) or
# this script change: a stamp file records the hash they were built from.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="$here/.bin"

command -v go >/dev/null || { echo "devcluster: Go toolchain not found on PATH" >&2; exit 1; }
mkdir -p "$bin"

# up_to_date STAMP FILES...: the stamp holds the hash of FILES and this script.
pins_of() { cat "$@" "$here/build.sh" | sha256sum | cut -d' ' -f1; }
up_to_date() {
  local stamp="$1"; shift
  [[ -f "$stamp" && "$(cat "$stamp")" == "$(pins_of "$@")" ]]
}

# The Kubernetes binaries say the version of their pinned module, as a release build does:
# built from the module, they would answer `v0.0.0-master+$Format:%H$`, which clients that
# check the server's version (kubectl's skew warning, Helm, operators) refuse or misread.
kubernetes_version_flags() {
  local version major minor flags="" package
  version="$(cd "$here" && go list -mod=mod -m -f '{{.Version}}' k8s.io/kubernetes)"
  [[ "$version" =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+ ]] || { echo "devcluster: k8s.io/kubernetes at '$version'" >&2; exit 1; }
  major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}"
  # component-base for the servers, client-go's copy for kubectl's client version.
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $package.gitVersion=$version -X $package.gitMajor=$major -X $package.gitMinor=$minor"
    flags+=" -X $package.gitTreeState=clean"
  done
  echo "$flags"
}

build_control_plane() {
  declare -A packages=(
    [etcd]=go.etcd.io/etcd/server/v3
    [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
    [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
    [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
    [kubectl]=k8s.io/kubernetes/cmd/kubectl
    [kwok]=sigs.k8s.io/kwok/cmd/kwok
  )
  local start=$SECONDS name stamp
  stamp="$(kubernetes_version_flags)"
  for name in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok; do
    echo "devcluster: building $name (${packages[$name]})" >&2
    # -trimpath and stripped symbols keep the binaries small; CGO off as upstream releases do.
    (cd "$here" && CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags="-s -w $stamp" -o "$bin/$name" "${packages[$name]}")
  done
  echo "devcluster: built control plane in $((SECONDS - start))s" >&2
}

# istiod's version string is the module's VERSION file (e.g. 1.31) plus the pinned commit, so
# `istioctl version`-style output and the xDS ISTIO_VERSION say what runs.
build_istiod() {
  local start=$SECONDS module version commit
  # `go list -m` names the module's directory only once it is in the module cache; on a
  # fresh machine it is not yet.
  (cd "$here/istiod" && go mod download istio.io/istio)
  module="$(cd "$here/istiod" && go list -mod=mod -m -f '{{.Dir}}' istio.io/istio)"
  commit="$(cd "$here/istiod" && go list -mod=mod -m -f '{{.Version}}' istio.io/istio)"
  [[ -f "$module/VERSION" ]] || { echo "devcluster: istio.io/istio not in the module cache (dir '$module')" >&2; exit 1; }
  version="$(cat "$module/VERSION")-dev+${commit##*-}"
  echo "devcluster: building istiod $version (istio.io/istio/pilot/cmd/pilot-discovery)" >&2
  (cd "$here/istiod" && CGO_ENABLED=0 go build -mod=mod -trimpath \
    -ldflags="-s -w -X istio.io/istio/pkg/version.buildVersion=$version -X istio.io/istio/pkg/version.buildGitRevision=${commit##*-}" \
    -o "$bin/pilot-discovery" istio.io/istio/pilot/cmd/pilot-discovery)
  echo "devcluster: building xds-client" >&2
  (cd "$here/istiod" && CGO_ENABLED=0 go build -mod=mod -trimpath -o "$bin/xds-client" ./xds-client)
  echo "devcluster: built istiod in $((SECONDS - start))s" >&2
}

control_plane_pins=("$here/go.mod" "$here/go.sum")
istiod_pins=("$here/istiod/go.mod" "$here/istiod/go.sum" "$here"/istiod/xds-client/*.go)
if ! up_to_date "$bin/.pins" "${control_plane_pins[@]}"; then
  rm -f "$bin/.pins"
  build_control_plane
  pins_of "${control_plane_pins[@]}" >"$bin/.pins"
fi
if ! up_to_date "$bin/.istiod-pins" "${istiod_pins[@]}"; then
  rm -f "$bin/.istiod-pins"
  build_istiod
  pins_of "${istiod_pins[@]}" >"$bin/.istiod-pins"
fi
