#!/usr/bin/env bash
# Installs everything the osmcloud local stack needs, idempotently.
#
#   bash infra/bootstrap.sh
#
# Downloads and builds go to a cache outside the clone:
#   CACHE=${OSMCLOUD_CACHE:-$HOME/.cache/osmcloud}
#     kafka-4.1.1/lib/           Kafka broker jars (from Maven Central, via infra/kafka/pom.xml)
#     bin/osmcloud-ferretdb-<h>  our FerretDB 1.24.2 wrapper (infra/ferretdb), <h> = hash of its sources
#     versitygw-1.8.0/versitygw  S3 server (go install from the Go module proxy)
#     npm/                       npm's cache for the web app (clients/web: npm ci, then vite build
#                                into clients/web/dist, again only when its sources change)
#     helm-4.3.2/helm            Helm 4 (go install; tests/helm lints and renders the chart)
#     prometheus-0.316.0/        Prometheus 3.16 and promtool (go install, without the cloud
#                                service discoveries; `make up` runs it, make test checks rules)
# plus Maven's (~/.m2), Go's (~/go/pkg/mod, ~/.cache/go-build) and uv's own caches.
# The Python virtualenv is REPO/.venv (uv sync --frozen).
#
# A second run installs nothing and takes seconds. Every step prints "[bootstrap] <step>";
# a failing step names itself and says how to retry, and the script exits non-zero.
set -uo pipefail

KAFKA_VERSION=4.1.1
VERSITYGW_VERSION=1.8.0
HELM_VERSION=4.3.2                 # keep in step with osmcloud_localstack.paths
PROMETHEUS_MODULE_VERSION=0.316.0  # Prometheus 3.16 (its Go module's version)
MIN_PYTHON=3.11
MIN_JAVA=17
MIN_NODE=18.19  # Debian 12's nodejs; Vite 6 and Vitest 3 run on it
MIN_GO=1.21   # older Go cannot fetch the newer toolchain FerretDB/versitygw ask for (GOTOOLCHAIN=auto)

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${OSMCLOUD_CACHE:-$HOME/.cache/osmcloud}
START=$(date +%s)
STEP=""

step() {
    STEP=$1
    LOG=""
    echo "[bootstrap] $1"
}

info() {
    echo "[bootstrap]   $1"
}

LOGDIR="$CACHE/logs"
LOG=""

# run_logged LOGNAME CMD...: runs CMD with its output in $LOGDIR/LOGNAME.log (shown on failure)
run_logged() {
    LOG="$LOGDIR/$1.log"
    shift
    "$@" >"$LOG" 2>&1
}

fail() {
    echo "[bootstrap] FAILED at step: $STEP" >&2
    if [ -n "$LOG" ] && [ -s "$LOG" ]; then
        echo "[bootstrap]   last lines of $LOG:" >&2
        tail -n 15 "$LOG" | sed 's/^/[bootstrap]   | /' >&2
    fi
    while [ $# -gt 0 ]; do
        echo "[bootstrap]   $1" >&2
        shift
    done
    echo "[bootstrap]   then retry with: bash infra/bootstrap.sh   (cache: $CACHE)" >&2
    exit 1
}

# version_ge A B: true when dotted version A >= B
version_ge() {
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    fi
fi

apt_updated=0
apt_install() {
    # apt_install PKG... : installs Debian packages without starting their services.
    if ! command -v apt-get >/dev/null 2>&1; then
        fail "apt-get is not available; install these packages by hand: $*"
    fi
    if [ "$(id -u)" != "0" ] && [ -z "$SUDO" ]; then
        fail "need root (or sudo) to run: apt-get install -y $*" "install them yourself, e.g. as root: apt-get update && apt-get install -y $*"
    fi
    if [ $apt_updated = 0 ]; then
        info "apt-get update"
        run_logged apt-get-update $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q \
            || fail "apt-get update failed (network? apt sources?)" "run by hand: apt-get update"
        apt_updated=1
    fi
    info "apt-get install -y $*"
    # Debian's nginx package would start a system nginx on port 80: keep services from starting
    # during the install unless a policy already exists (as in most containers).
    local own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ] && [ "$(id -u)" = "0" ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
    fi
    run_logged apt-get-install $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
    local rc=$?
    if [ $own_policy = 1 ]; then
        rm -f /usr/sbin/policy-rc.d
    fi
    [ $rc = 0 ] || fail "apt-get install $* failed" "run by hand: apt-get update && apt-get install -y $*"
}

cd "$REPO" || fail "cannot cd to $REPO"
mkdir -p "$CACHE/bin" "$LOGDIR" || { STEP="cache directory"; fail "cannot create $CACHE (set OSMCLOUD_CACHE to a writable directory)"; }

# ---------------------------------------------------------------------------------------------
step "python3 >= $MIN_PYTHON"
command -v python3 >/dev/null 2>&1 || fail "python3 not found" "install Python $MIN_PYTHON or newer (e.g. apt-get install python3, or pyenv)"
PYV=$(python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])') || fail "python3 does not run"
version_ge "$PYV" "$MIN_PYTHON" || fail "python3 is $PYV, need >= $MIN_PYTHON" "install a newer Python and put it first on PATH"
info "python3 $PYV"

# ---------------------------------------------------------------------------------------------
step "uv"
UV=""
if command -v uv >/dev/null 2>&1; then
    UV=uv
else
    info "uv missing: pip install uv"
    python3 -m pip install -q uv || python3 -m pip install -q --user uv \
        || fail "pip install uv failed" "install uv by hand: python3 -m pip install uv   (or see https://docs.astral.sh/uv/)"
    hash -r
    if command -v uv >/dev/null 2>&1; then
        UV=uv
    elif [ -x "$HOME/.local/bin/uv" ]; then
        UV="$HOME/.local/bin/uv"
    elif python3 -m uv --version >/dev/null 2>&1; then
        UV="python3 -m uv"
    else
        fail "uv was installed but cannot be found" "add pip's script directory (e.g. ~/.local/bin) to PATH"
    fi
fi
info "$($UV --version)"

# ---------------------------------------------------------------------------------------------
step "python environment (uv sync --frozen -> .venv)"
run_logged uv-sync $UV sync --frozen \
    || fail "uv sync --frozen failed" "if uv.lock is out of date run 'uv lock' first; check network access to PyPI"
[ -x "$REPO/.venv/bin/python" ] || fail ".venv/bin/python missing after uv sync"

# ---------------------------------------------------------------------------------------------
step "nginx (gateway)"
find_nginx() {
    if [ -x /usr/sbin/nginx ]; then echo /usr/sbin/nginx; return 0; fi
    command -v nginx 2>/dev/null
}
NGINX=$(find_nginx)
if [ -z "$NGINX" ]; then
    apt_install nginx-light
    NGINX=$(find_nginx)
    [ -n "$NGINX" ] || fail "nginx still missing after apt-get install nginx-light"
fi
if ! "$NGINX" -V 2>&1 | grep -q -- "http_auth_request_module"; then
    fail "$NGINX was built without the auth_request module" "install Debian's nginx-light (or nginx) package: apt-get install -y nginx-light"
fi
info "$("$NGINX" -v 2>&1)"

# ---------------------------------------------------------------------------------------------
step "java >= $MIN_JAVA and maven (Kafka)"
java_major() {
    java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}' | awk -F. '{ if ($1 == "1") print $2; else print $1 }'
}
need_java=0
if ! command -v java >/dev/null 2>&1; then
    need_java=1
else
    JV=$(java_major)
    if [ -z "$JV" ] || [ "$JV" -lt "$MIN_JAVA" ]; then need_java=1; fi
fi
pkgs=()
[ $need_java = 1 ] && pkgs+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || pkgs+=(maven)
if [ ${#pkgs[@]} -gt 0 ]; then
    apt_install "${pkgs[@]}"
    hash -r
fi
command -v java >/dev/null 2>&1 || fail "java not found" "install Java $MIN_JAVA+: apt-get install -y openjdk-17-jre-headless"
JV=$(java_major)
[ -n "$JV" ] && [ "$JV" -ge "$MIN_JAVA" ] || fail "java is version '$JV', need >= $MIN_JAVA (the first java on PATH is used)" \
    "install openjdk-17-jre-headless and select it with update-alternatives --config java"
command -v mvn >/dev/null 2>&1 || fail "mvn not found" "apt-get install -y maven"
info "java $JV, $(mvn -v -Dstyle.color=never 2>/dev/null | head -n1 | sed 's/\x1b\[[0-9;]*m//g')"

# ---------------------------------------------------------------------------------------------
step "kafka $KAFKA_VERSION jars (Maven Central)"
KAFKA_DIR="$CACHE/kafka-$KAFKA_VERSION"
POM_HASH=$(sha256sum "$REPO/infra/kafka/pom.xml" | cut -c1-16)
MARKER="$KAFKA_DIR/.complete-$POM_HASH"
if [ -f "$MARKER" ]; then
    info "cached in $KAFKA_DIR/lib"
else
    T0=$(date +%s)
    rm -rf "$KAFKA_DIR/lib" "$KAFKA_DIR"/.complete-*
    mkdir -p "$KAFKA_DIR" || fail "cannot create $KAFKA_DIR"
    run_logged maven mvn -q -B -Dstyle.color=never -f "$REPO/infra/kafka/pom.xml" dependency:copy-dependencies -DoutputDirectory="$KAFKA_DIR/lib" \
        || fail "mvn dependency:copy-dependencies failed (network access to Maven Central?)" \
                "to see details: mvn -B -f infra/kafka/pom.xml dependency:copy-dependencies -DoutputDirectory=$KAFKA_DIR/lib"
    ls "$KAFKA_DIR/lib"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 || fail "kafka_2.13-$KAFKA_VERSION.jar missing in $KAFKA_DIR/lib"
    touch "$MARKER"
    info "$(ls "$KAFKA_DIR/lib" | wc -l) jars in $KAFKA_DIR/lib ($(( $(date +%s) - T0 )) s)"
fi

# ---------------------------------------------------------------------------------------------
step "go >= $MIN_GO (FerretDB and versitygw are built from the Go module proxy)"
GO=$(command -v go 2>/dev/null || true)
[ -z "$GO" ] && [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go
[ -n "$GO" ] || fail "go not found" "install Go >= $MIN_GO from https://go.dev/dl/ (Debian's golang package may be too old) and put it on PATH"
GOV=$("$GO" env GOVERSION 2>/dev/null | sed 's/^go//')
version_ge "$GOV" "$MIN_GO" || fail "go is $GOV, need >= $MIN_GO" "install a newer Go from https://go.dev/dl/"
info "go $GOV"

# ---------------------------------------------------------------------------------------------
step "ferretdb 1.24.2 (our embedding program in infra/ferretdb)"
# the same files, in the same order, as osmcloud_localstack.paths.ferretdb_sources
FERRET_HASH=$(cd "$REPO/infra/ferretdb" && cat go.mod go.sum $(LC_ALL=C ls *.go) build.sh $(LC_ALL=C ls patches/*.patch) $(find _added -type f -name '*.go' | LC_ALL=C sort) | sha256sum | cut -c1-12)
FERRET_BIN="$CACHE/bin/osmcloud-ferretdb-$FERRET_HASH"
if [ -x "$FERRET_BIN" ]; then
    info "cached: $FERRET_BIN"
else
    info "go build -> $FERRET_BIN (about a minute when cold)"
    T0=$(date +%s)
    LOG="$LOGDIR/go-build-ferretdb.log"
    GO="$GO" bash "$REPO/infra/ferretdb/build.sh" "$FERRET_BIN.tmp.$$" >"$LOG" 2>&1 \
        || { rm -f "$FERRET_BIN.tmp.$$"; fail "build of infra/ferretdb failed (network access to the Go module proxy?)" \
                "to see details: bash infra/ferretdb/build.sh /tmp/ferretdb-test"; }
    mv -f "$FERRET_BIN.tmp.$$" "$FERRET_BIN" || fail "cannot move the binary to $FERRET_BIN"
    info "built in $(( $(date +%s) - T0 )) s"
fi

# ---------------------------------------------------------------------------------------------
step "versitygw $VERSITYGW_VERSION (S3 server)"
VGW_DIR="$CACHE/versitygw-$VERSITYGW_VERSION"
if [ -x "$VGW_DIR/versitygw" ]; then
    info "cached: $VGW_DIR/versitygw"
else
    info "go install github.com/versity/versitygw/cmd/versitygw@v$VERSITYGW_VERSION (about 45 s when cold)"
    T0=$(date +%s)
    mkdir -p "$VGW_DIR" || fail "cannot create $VGW_DIR"
    LOG="$LOGDIR/go-install-versitygw.log"
    (cd "$CACHE" && GOBIN="$VGW_DIR" "$GO" install "github.com/versity/versitygw/cmd/versitygw@v$VERSITYGW_VERSION") >"$LOG" 2>&1 \
        || fail "go install versitygw failed (network access to the Go module proxy?)" \
                "to see details: GOBIN=$VGW_DIR go install github.com/versity/versitygw/cmd/versitygw@v$VERSITYGW_VERSION"
    [ -x "$VGW_DIR/versitygw" ] || fail "$VGW_DIR/versitygw missing after go install"
    info "built in $(( $(date +%s) - T0 )) s"
fi

# ---------------------------------------------------------------------------------------------
step "web app (clients/web: node >= $MIN_NODE, npm ci, vite build)"
WEB="$REPO/clients/web"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
    hash -r
fi
command -v node >/dev/null 2>&1 || fail "node not found" "install Node.js >= $MIN_NODE (apt-get install -y nodejs npm)"
NODEV=$(node -p 'process.versions.node' 2>/dev/null) || fail "node does not run"
version_ge "$NODEV" "$MIN_NODE" || fail "node is $NODEV, need >= $MIN_NODE" "install a newer Node.js and put it first on PATH"
export npm_config_cache="$CACHE/npm" npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
LOCK_HASH=$(sha256sum "$WEB/package-lock.json" | cut -c1-16)
if [ "$(cat "$WEB/node_modules/.osmcloud-lock" 2>/dev/null)" = "$LOCK_HASH" ]; then
    info "node $NODEV; dependencies installed (package-lock.json unchanged)"
else
    info "node $NODEV; npm ci (cache: $CACHE/npm)"
    T0=$(date +%s)
    run_logged npm-ci npm ci --prefix "$WEB" --prefer-offline --no-audit --no-fund \
        || fail "npm ci failed (network access to the npm registry?)" "to see details: cd clients/web && npm ci"
    echo "$LOCK_HASH" >"$WEB/node_modules/.osmcloud-lock"
    info "installed in $(( $(date +%s) - T0 )) s"
fi
# the build is redone only when a source of the app changed (a hash of every file but the
# installed dependencies and the build itself), or when the build is missing
WEB_HASH=$(cd "$WEB" && find . \( -path ./node_modules -o -path ./dist \) -prune -o -type f -print | LC_ALL=C sort \
    | xargs sha256sum | sha256sum | cut -c1-16)
if [ -f "$WEB/dist/index.html" ] && [ "$(cat "$WEB/dist/.osmcloud-sources" 2>/dev/null)" = "$WEB_HASH" ]; then
    info "built: clients/web/dist (sources unchanged)"
else
    info "npm run build -> clients/web/dist (type check + vite build, about 30 s)"
    T0=$(date +%s)
    run_logged web-build npm run --prefix "$WEB" build \
        || fail "the web app did not build (type errors or a broken import: see above)" "to see details: cd clients/web && npm run build"
    echo "$WEB_HASH" >"$WEB/dist/.osmcloud-sources"
    info "built in $(( $(date +%s) - T0 )) s"
fi

# ---------------------------------------------------------------------------------------------
step "chromium (the web app's browser tests drive Debian's chromium through Playwright)"
if [ -x /usr/bin/chromium ]; then
    info "$(/usr/bin/chromium --version 2>/dev/null | head -n1)"
else
    apt_install chromium
    [ -x /usr/bin/chromium ] || fail "/usr/bin/chromium missing after apt-get install chromium"
    info "$(/usr/bin/chromium --version 2>/dev/null | head -n1)"
fi

# ---------------------------------------------------------------------------------------------
# go_install_tool NAME DIR "ARGS...": go install ARGS into DIR (atomically: a half-built
# directory is never taken for a finished one)
go_install_tool() {
    local name=$1 dir=$2
    shift 2
    local tmp="$dir.tmp.$$"
    rm -rf "$tmp" && mkdir -p "$tmp" || fail "cannot create $tmp"
    LOG="$LOGDIR/go-install-$name.log"
    (cd "$CACHE" && GOFLAGS=-buildvcs=false GOBIN="$tmp" "$GO" install "$@") >"$LOG" 2>&1 \
        || { rm -rf "$tmp"; fail "go install $name failed (network access to the Go module proxy?)" \
                "to see details: GOBIN=/tmp/$name go install $*"; }
    rm -rf "$dir" && mv "$tmp" "$dir" || fail "cannot move $tmp to $dir"
}

step "helm $HELM_VERSION (chart checks)"
HELM_DIR="$CACHE/helm-$HELM_VERSION"
if [ -x "$HELM_DIR/helm" ]; then
    info "cached: $HELM_DIR/helm"
else
    info "go install helm.sh/helm/v4/cmd/helm@v$HELM_VERSION (a few minutes when cold)"
    T0=$(date +%s)
    go_install_tool helm "$HELM_DIR" "helm.sh/helm/v4/cmd/helm@v$HELM_VERSION"
    info "built in $(( $(date +%s) - T0 )) s"
fi

step "prometheus and promtool $PROMETHEUS_MODULE_VERSION (monitoring; rule checks)"
PROM_DIR="$CACHE/prometheus-$PROMETHEUS_MODULE_VERSION"
if [ -x "$PROM_DIR/prometheus" ] && [ -x "$PROM_DIR/promtool" ]; then
    info "cached: $PROM_DIR"
else
    info "go install prometheus, promtool @v$PROMETHEUS_MODULE_VERSION -tags remove_all_sd (several minutes when cold)"
    T0=$(date +%s)
    go_install_tool prometheus "$PROM_DIR" -tags remove_all_sd \
        "github.com/prometheus/prometheus/cmd/prometheus@v$PROMETHEUS_MODULE_VERSION" \
        "github.com/prometheus/prometheus/cmd/promtool@v$PROMETHEUS_MODULE_VERSION"
    info "built in $(( $(date +%s) - T0 )) s"
fi

echo "[bootstrap] done in $(( $(date +%s) - START )) s (cache: $CACHE)"
