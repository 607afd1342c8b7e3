#!/usr/bin/env bash
# Builds Prometheus' promtool from the Go module proxy, once, into the cluster-tools cache:
#   ${MESHLET_CLUSTER_CACHE:-$HOME/.cache/meshlet-cluster}/bin/promtool-<version>
# test/integration/metrics/promtool-check-metrics.test.ts runs `promtool check metrics` on a
# real sidecar's /metrics with it, and says it is skipped when this script could not build it.
# Prometheus tags its Go module v0.3XX.Y for release 3.XX.Y (v0.316.0 is Prometheus 3.16.0).
# A cold build downloads the module graph and compiles it: about 13 minutes on 2 cores.
set -euo pipefail
PROMTOOL_VERSION=v0.316.0
cache="${MESHLET_CLUSTER_CACHE:-$HOME/.cache/meshlet-cluster}/bin"
out="$cache/promtool-$PROMTOOL_VERSION"
if [ -x "$out" ]; then echo "promtool: $out (cached)"; exit 0; fi
command -v go >/dev/null 2>&1 || { echo "promtool: not built (no Go toolchain on PATH)" >&2; exit 1; }
mkdir -p "$cache"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
if ! GOBIN="$tmp/bin" go install "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION"; then
  # `go install pkg@version` refuses a module whose go.mod has replace directives: build it
  # from a throwaway module that requires it instead.
  echo "promtool: go install refused; building through a module of our own" >&2
  mkdir -p "$tmp/mod" && cd "$tmp/mod"
  go mod init meshlet.local/promtool-build >/dev/null 2>&1
  go get "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION"
  go build -o "$tmp/bin/promtool" github.com/prometheus/prometheus/cmd/promtool
fi
mv "$tmp/bin/promtool" "$out.tmp"
mv "$out.tmp" "$out"
echo "promtool: built $out"
