#!/usr/bin/env bash
# Builds osmcloud-ferretdb into OUT: our program (main.go, serialize.go) embedding FerretDB
# 1.24.2 (the release go.mod pins, from the Go module proxy) changed by the patch set in
# patches/*.patch (applied in name order; each must apply exactly, no fuzz) plus our own new
# files in _added/ (laid out as the module is; none may replace an upstream file). Why each
# patch exists, its measurement and what would let us drop it: docs/adr/0001. The module
# cache stays as the proxy delivered it: the build compiles a patched copy of the module.
# Extra arguments go to `go build` (environment such as CGO_ENABLED=0 passes through).
# With --test instead of OUT, runs the Go tests of every package the patch set touches
# (FerretDB's own and ours, such as the sjson decoder's contract) with FerretDB's go.mod.
#   infra/ferretdb/build.sh OUT [go build flags...]
#   infra/ferretdb/build.sh --test [go test flags...]
set -euo pipefail
out=$1
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GO=${GO:-go}
cd "$here"
die() { echo "infra/ferretdb/build.sh: $*" >&2; exit 1; }
command -v git >/dev/null || die "git is needed to apply infra/ferretdb/patches (apt-get install git)"
"$GO" mod download github.com/FerretDB/FerretDB
module=$("$GO" list -m -f '{{.Dir}}' github.com/FerretDB/FerretDB)
version=$("$GO" list -m -f '{{.Version}}' github.com/FerretDB/FerretDB)
[ -f "$module/internal/backends/sqlite/collection.go" ] || die "FerretDB module source not found at $module"
# Go refuses to overlay files of the module cache, so the build uses a patched copy of the
# module, through a go.mod that replaces the module with that copy.
work=$(mktemp -d "${TMPDIR:-/tmp}/osmcloud-ferretdb-build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -R "$module" "$work/ferretdb"
chmod -R u+w "$work/ferretdb"
packages=()
while IFS= read -r f; do
    [ ! -e "$work/ferretdb/$f" ] || die "_added/$f exists in FerretDB $version: change it with a patch in patches/, not a copy"
    mkdir -p "$work/ferretdb/$(dirname "$f")"
    cp "_added/$f" "$work/ferretdb/$f"
    packages+=("./$(dirname "$f")/")
done < <(cd _added && find . -type f -name '*.go' | sed 's#^\./##' | LC_ALL=C sort)
# git apply outside a repository: the ceiling keeps it from finding one above the copy
export GIT_CEILING_DIRECTORIES=$work
for p in $(LC_ALL=C ls patches/*.patch); do
    if ! err=$(cd "$work/ferretdb" && git apply --check --whitespace=nowarn "$here/$p" 2>&1); then
        die "$p does not apply cleanly to FerretDB $version (go.mod pins it): refresh the patch against that release.
$err"
    fi
    (cd "$work/ferretdb" && git apply --whitespace=nowarn "$here/$p")
    while IFS= read -r f; do packages+=("./$(dirname "$f")/"); done \
        < <(sed -n 's#^+++ b/\(.*\)$#\1#p' "$p")
done
cp go.mod "$work/go.mod"
cp go.sum "$work/go.sum"
echo "replace github.com/FerretDB/FerretDB => $work/ferretdb" >>"$work/go.mod"
if [ "$out" = "--test" ]; then
    cd "$work/ferretdb"
    mkdir -p .git   # FerretDB's test helpers find the repository root by it
    # what upstream's `bin/task gen-version` writes: its version package panics without it
    # when FerretDB is the main module, as in its own tests
    echo "$version" >build/version/version.txt
    mapfile -t packages < <(printf '%s\n' "${packages[@]}" | LC_ALL=C sort -u)
    echo "go test ${packages[*]}"
    # FerretDB's go.sum names its test dependencies; the proxy serves them once, then the cache
    GOFLAGS=-mod=mod "$GO" test "$@" "${packages[@]}"
    exit
fi
"$GO" build -trimpath -modfile "$work/go.mod" "$@" -o "$out" .
