#!/usr/bin/env bash
# Builds osmcloud-ferretdb into $1: our program (main.go, serialize.go) embedding FerretDB
# 1.24.2 patched by _overlay, which mirrors the module's layout: more filters answered from
# indexes (internal/backends/sqlite/pushdown.go), deletes by _id without reading the
# documents (internal/handler/msg_delete.go), documents decoded in one pass
# (internal/handler/sjson/fast_unmarshal.go), no per-statement log formatting
# (internal/util/fsql), no leak tracking (internal/util/resource). The module cache stays as the Go proxy
# delivered it: the build compiles a copy of the module with our files laid over it.
# Extra arguments go to `go build` (environment such as CGO_ENABLED=0 passes through).
# With --test instead of OUT, runs the tests of the packages we overlay instead (ours, such
# as the sjson decoder's contract, and FerretDB's own), with FerretDB's go.mod.
#   infra/ferretdb/build.sh OUT [go build flags...]
#   infra/ferretdb/build.sh --test [go test flags...]
set -euo pipefail
out=$1
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GO=${GO:-go}
cd "$here"
"$GO" mod download github.com/FerretDB/FerretDB
module=$("$GO" list -m -f '{{.Dir}}' github.com/FerretDB/FerretDB)
[ -f "$module/internal/backends/sqlite/collection.go" ] || { echo "FerretDB module source not found at $module" >&2; exit 1; }
# Go refuses to overlay files of the module cache, so the build uses a copy of the module
# with our files laid over it, through a go.mod that replaces the module with that copy.
work=$(mktemp -d "${TMPDIR:-/tmp}/osmcloud-ferretdb-build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -R "$module" "$work/ferretdb"
chmod -R u+w "$work/ferretdb"
cp -R _overlay/. "$work/ferretdb/"   # _overlay mirrors the module's layout
cp go.mod "$work/go.mod"
cp go.sum "$work/go.sum"
echo "replace github.com/FerretDB/FerretDB => $work/ferretdb" >>"$work/go.mod"
if [ "$out" = "--test" ]; then
    cd "$work/ferretdb"
    mkdir -p .git   # FerretDB's test helpers find the repository root by it
    # FerretDB's go.sum names its test dependencies; the proxy serves them once, then the cache
    GOFLAGS=-mod=mod "$GO" test "$@" ./internal/handler/sjson/
    exit
fi
"$GO" build -trimpath -modfile "$work/go.mod" "$@" -o "$out" .
