#!/usr/bin/env bash
# Builds the Kubernetes control-plane programs the real-API-server tests (test/cluster) run:
# kube-apiserver, kube-controller-manager and kubectl from ONE pinned Kubernetes release, and
# etcd, all from source with `go build` through the Go module proxy (never a downloaded binary).
#
#   test/cluster/build/kubernetes.sh          build what is missing, print the binaries' paths
#   test/cluster/build/kubernetes.sh --check  print the paths; exit 0 when every binary is cached, 1 if not
#
# Binaries land in ${MESHLET_CLUSTER_CACHE:-$HOME/.cache/meshlet-cluster}/bin/<name>-<version>.
# Idempotent: a second run finds them and builds nothing. Versions are pinned by the build
# modules beside this script (k8s/go.mod, etcd/go.mod); change them there AND here.
set -euo pipefail

K8S_VERSION=v1.37.2     # k8s.io/kubernetes; staging modules k8s.io/* at v0.37.2 (k8s/go.mod)
ETCD_VERSION=v3.6.17    # go.etcd.io/etcd/server/v3 (etcd/go.mod)

here="$(cd "$(dirname "$0")" && pwd)"
cache="${MESHLET_CLUSTER_CACHE:-$HOME/.cache/meshlet-cluster}"
bin="$cache/bin"

k8s_bins=(kube-apiserver kube-controller-manager kubectl)
missing_k8s=()
for b in "${k8s_bins[@]}"; do
  [ -x "$bin/$b-$K8S_VERSION" ] || missing_k8s+=("$b")
done
missing_etcd=0
[ -x "$bin/etcd-$ETCD_VERSION" ] || missing_etcd=1

print_paths() {
  for b in "${k8s_bins[@]}"; do echo "$b=$bin/$b-$K8S_VERSION"; done
  echo "etcd=$bin/etcd-$ETCD_VERSION"
}

if [ "${1:-}" = "--check" ]; then
  print_paths
  [ ${#missing_k8s[@]} -eq 0 ] && [ $missing_etcd -eq 0 ]
  exit
fi

if [ ${#missing_k8s[@]} -eq 0 ] && [ $missing_etcd -eq 0 ]; then
  print_paths
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "kubernetes.sh: Go is not on PATH; install Go >= 1.26 (the Go module proxy must be reachable) to build kube-apiserver, kube-controller-manager, kubectl and etcd" >&2
  exit 3
fi

mkdir -p "$bin"
# One build at a time per cache (vitest's globalSetup and a hand-run can race).
exec 9>"$cache/.build.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

export CGO_ENABLED=0
export GOFLAGS="-trimpath -buildvcs=false -mod=readonly"
tmp="$(mktemp -d "$cache/build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

start=$(date +%s)

# Re-check under the lock: another run may have built them meanwhile.
missing_k8s=()
for b in "${k8s_bins[@]}"; do
  [ -x "$bin/$b-$K8S_VERSION" ] || missing_k8s+=("$b")
done
[ -x "$bin/etcd-$ETCD_VERSION" ] && missing_etcd=0

if [ ${#missing_k8s[@]} -gt 0 ]; then
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  # What Kubernetes' own hack/lib/version.sh stamps, so `--version` and /version tell the truth.
  ldx=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldx+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldx+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  pkgs=()
  for b in "${missing_k8s[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  echo "kubernetes.sh: building ${missing_k8s[*]} $K8S_VERSION (cold, with module downloads: about 9 min on 2 cores)" >&2
  (cd "$here/k8s" && go build -ldflags="-s -w$ldx" -o "$tmp/" "${pkgs[@]}")
  for b in "${missing_k8s[@]}"; do mv -f "$tmp/$b" "$bin/$b-$K8S_VERSION"; done
fi

if [ $missing_etcd -eq 1 ]; then
  echo "kubernetes.sh: building etcd $ETCD_VERSION" >&2
  (cd "$here/etcd" && go build -ldflags="-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
  mv -f "$tmp/etcd" "$bin/etcd-$ETCD_VERSION"
fi

echo "kubernetes.sh: built in $(( $(date +%s) - start ))s" >&2
print_paths
