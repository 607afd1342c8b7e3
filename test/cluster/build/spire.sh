#!/usr/bin/env bash
# Builds spire-server and spire-agent from the github.com/spiffe/spire Go module (sources through
# the Go module proxy; no binary is ever downloaded) and caches them by version:
#   ${MESHLET_CLUSTER_CACHE:-$HOME/.cache/meshlet-cluster}/bin/spire-server-<version>
#   ${MESHLET_CLUSTER_CACHE:-$HOME/.cache/meshlet-cluster}/bin/spire-agent-<version>
# Idempotent: when both binaries exist it builds nothing. Prints, on stdout, one line per binary:
# `spire-server=<path>` and `spire-agent=<path>`; progress goes to stderr.
#
# The version is the one test/cluster/build/spire/go.mod requires (change it there, then
# `go mod tidy` in that directory). `go install …/cmd/spire-server@<version>` is not used: it asks
# the proxy for the module's version list (deprecation check), which the proxy may refuse.
# spire-server's default sqlite3 datastore (mattn/go-sqlite3) needs CGO and a C compiler.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
module="$here/spire"
SPIRE_VERSION="$(awk '$1 == "require" && $2 == "github.com/spiffe/spire" { print $3 }' "$module/go.mod")"
[[ -n "$SPIRE_VERSION" ]] || { echo "spire.sh: no github.com/spiffe/spire requirement in $module/go.mod" >&2; exit 1; }
CACHE="${MESHLET_CLUSTER_CACHE:-$HOME/.cache/meshlet-cluster}"
BIN="$CACHE/bin"
SERVER="$BIN/spire-server-$SPIRE_VERSION"
AGENT="$BIN/spire-agent-$SPIRE_VERSION"

if [[ -x "$SERVER" && -x "$AGENT" ]]; then
  echo "spire.sh: using cached $SERVER and $AGENT" >&2
else
  command -v go >/dev/null || { echo "spire.sh: go is not on PATH" >&2; exit 127; }
  command -v "${CC:-cc}" >/dev/null || { echo "spire.sh: no C compiler (${CC:-cc}); spire-server's sqlite3 datastore needs CGO" >&2; exit 127; }
  mkdir -p "$BIN"
  work="$(mktemp -d "$BIN/.spire-build.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  start=$SECONDS
  echo "spire.sh: building spire-server and spire-agent $SPIRE_VERSION with $(go env GOVERSION) (a cold build takes minutes)" >&2
  (
    cd "$module"
    # -mod=readonly: the checked-in go.sum is the whole truth; GOTOOLCHAIN=local: never fetch a
    # toolchain. gittag makes `--version` print the release (as SPIRE's own release build does).
    GOTOOLCHAIN=local CGO_ENABLED=1 GOFLAGS="${GOFLAGS:-} -mod=readonly" \
      go build -trimpath ${MESHLET_GO_BUILD_FLAGS:-} -o "$work/" \
        -ldflags "-s -w -X github.com/spiffe/spire/pkg/common/version.gittag=${SPIRE_VERSION#v}" \
        github.com/spiffe/spire/cmd/spire-server \
        github.com/spiffe/spire/cmd/spire-agent
  )
  # Moved into place only once both are built, so a failed build never leaves half a cache.
  mv -f "$work/spire-server" "$SERVER"
  mv -f "$work/spire-agent" "$AGENT"
  echo "spire.sh: built in $((SECONDS - start)) s" >&2
fi
echo "spire-server=$SERVER"
echo "spire-agent=$AGENT"
