#!/usr/bin/env bash
# docker-compose.yml on this machine: Docker Compose v2 built from the Go module proxy, our own
# engine (infra/docker/dockerd.sh), the images built here (infra/images/docker-compose.local.yml)
# and the infrastructure published on loopback for tests (infra/images/docker-compose.test.yml).
#
#   bash infra/docker/compose.sh install    # build Compose (cached by version), install the CLI plugin
#   bash infra/docker/compose.sh up [ARGS]  # engine + images + `docker compose up -d --wait ARGS`
#   bash infra/docker/compose.sh env        # the OSMCLOUD_* variables that point tests at it
#   bash infra/docker/compose.sh test       # up, the thin-path test in mode env, down
#   bash infra/docker/compose.sh scale      # up --scale files=3 --scale trash=2, show the replicas share the work, down
#   bash infra/docker/compose.sh down       # compose down -v; stops the engine if nothing else runs on it
#   bash infra/docker/compose.sh ARGS...    # any other docker compose command on this project
#
# Ports (all on 127.0.0.1) derive from OSMCLOUD_COMPOSE_BASE_PORT (B, default 8080): gateway B,
# Kafka B+10, MongoDB protocol B+12, S3 B+13, SMTP B+14, the mail read API B+15.
# Compose is cached as $CACHE/docker-compose-$COMPOSE_VERSION/docker-compose and linked as
# ~/.docker/cli-plugins/docker-compose (so `docker compose` works for anyone on the machine).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
REPO=$PWD

COMPOSE_VERSION=${OSMCLOUD_COMPOSE_VERSION:-v2.40.3}
COMPOSE_MODULE=github.com/docker/compose/v2
CACHE=${OSMCLOUD_CACHE:-$HOME/.cache/osmcloud}
COMPOSE_BIN="$CACHE/docker-compose-$COMPOSE_VERSION/docker-compose"
PLUGIN_DIR=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
DOCKERD="bash infra/docker/dockerd.sh"
B=${OSMCLOUD_COMPOSE_BASE_PORT:-8080}

export GATEWAY_PORT=$B
export OSMCLOUD_COMPOSE_KAFKA_PORT=$((B + 10))
export OSMCLOUD_COMPOSE_MONGO_PORT=$((B + 12))
export OSMCLOUD_COMPOSE_S3_PORT=$((B + 13))
export OSMCLOUD_COMPOSE_SMTP_PORT=$((B + 14))
export OSMCLOUD_COMPOSE_MAIL_PORT=$((B + 15))
# docker-compose.yml has no default secrets: generate strong ones once and keep them in the
# git-ignored state directory (mode 0600), unless the caller's environment sets them.
SECRETS_FILE=${OSMCLOUD_COMPOSE_SECRETS:-$REPO/.state/compose/secrets.env}
if [ ! -s "$SECRETS_FILE" ]; then
    mkdir -p "$(dirname "$SECRETS_FILE")"
    (umask 077 && {
        echo "GATEWAY_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
        echo "S3_ACCESS_KEY=osmcloud-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
        echo "S3_SECRET_KEY=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
    } >"$SECRETS_FILE")
fi
while IFS='=' read -r name value; do
    case "$name" in GATEWAY_SECRET | S3_ACCESS_KEY | S3_SECRET_KEY) [ -n "${!name:-}" ] || export "$name=$value" ;; esac
done <"$SECRETS_FILE"
export DOCKER_BUILDKIT=0 # Debian's docker.io has no buildx: the classic builder

say() { echo "[compose] $*"; }
die() {
    echo "[compose] FAILED: $1" >&2
    shift
    for line in "$@"; do echo "[compose]   $line" >&2; done
    exit 1
}

install() {
    if [ ! -x "$COMPOSE_BIN" ]; then
        local go
        go=$(command -v go || echo /usr/local/go/bin/go)
        [ -x "$go" ] || die "go not found (Compose is built from the Go module proxy)" "run bash infra/bootstrap.sh"
        say "building Docker Compose $COMPOSE_VERSION from the Go module proxy (a few minutes when cold)"
        local t0=$SECONDS log="$CACHE/logs/go-build-compose.log" dir
        mkdir -p "$(dirname "$COMPOSE_BIN")" "$CACHE/logs"
        # `go install module/cmd@version` refuses modules whose go.mod has exclude directives
        # (compose's has), so download the module and build inside it.
        dir=$(cd "$CACHE" && "$go" mod download -json "$COMPOSE_MODULE@$COMPOSE_VERSION" 2>"$log" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
        [ -n "$dir" ] && [ -d "$dir" ] || { tail -n 5 "$log" >&2; die "go mod download $COMPOSE_MODULE@$COMPOSE_VERSION failed" "network access to the Go module proxy?"; }
        (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod "$go" build -trimpath \
            -ldflags "-s -w -X $COMPOSE_MODULE/internal.Version=$COMPOSE_VERSION" \
            -o "$COMPOSE_BIN.tmp.$$" ./cmd) >>"$log" 2>&1 ||
            { rm -f "$COMPOSE_BIN.tmp.$$"; tail -n 15 "$log" >&2; die "go build of Docker Compose failed (log $log)"; }
        mv -f "$COMPOSE_BIN.tmp.$$" "$COMPOSE_BIN"
        say "built in $((SECONDS - t0)) s: $COMPOSE_BIN"
    fi
    mkdir -p "$PLUGIN_DIR"
    if [ "$(readlink "$PLUGIN_DIR/docker-compose" 2>/dev/null)" != "$COMPOSE_BIN" ]; then
        ln -sfn "$COMPOSE_BIN" "$PLUGIN_DIR/docker-compose"
        say "installed the CLI plugin $PLUGIN_DIR/docker-compose -> $COMPOSE_BIN"
    fi
}

engine() {
    $DOCKERD start || die "the Docker engine did not start (see above)"
    eval "$($DOCKERD env)"
}

compose() {
    docker compose -f docker-compose.yml -f infra/images/docker-compose.local.yml -f infra/images/docker-compose.test.yml "$@"
}

images() {
    .venv/bin/python -m osmcloud_localstack.images build compose || die "an image did not build (the step is named above)"
}

up() {
    install
    engine
    images
    say "docker compose up -d --wait $* (gateway http://127.0.0.1:$GATEWAY_PORT)"
    local t0=$SECONDS
    compose up -d --wait --wait-timeout 300 "$@" || {
        compose ps -a >&2
        die "docker compose up did not bring every service to healthy (above: their state; logs: bash infra/docker/compose.sh logs SERVICE)"
    }
    say "up and healthy in $((SECONDS - t0)) s"
    compose ps --format 'table {{.Name}}\t{{.Image}}\t{{.Status}}\t{{.Ports}}'
}

env_vars() {
    cat <<EOF
export OSMCLOUD_GATEWAY_URL=http://127.0.0.1:$GATEWAY_PORT
export OSMCLOUD_MONGO_URL=mongodb://127.0.0.1:$OSMCLOUD_COMPOSE_MONGO_PORT/
export OSMCLOUD_KAFKA_BOOTSTRAP=127.0.0.1:$OSMCLOUD_COMPOSE_KAFKA_PORT
export OSMCLOUD_S3_ENDPOINT=127.0.0.1:$OSMCLOUD_COMPOSE_S3_PORT
export OSMCLOUD_S3_ACCESS_KEY=$S3_ACCESS_KEY
export OSMCLOUD_S3_SECRET_KEY=$S3_SECRET_KEY
export OSMCLOUD_S3_BUCKET=${S3_BUCKET:-osmcloud-blobs}
export OSMCLOUD_SMTP_HOST=127.0.0.1
export OSMCLOUD_SMTP_PORT=$OSMCLOUD_COMPOSE_SMTP_PORT
export OSMCLOUD_SMTP_SINK_URL=http://127.0.0.1:$OSMCLOUD_COMPOSE_MAIL_PORT
export OSMCLOUD_GATEWAY_SECRET=$GATEWAY_SECRET
EOF
}

down() {
    if ! $DOCKERD status >/dev/null 2>&1; then
        say "engine not running: nothing to take down"
        return 0
    fi
    eval "$($DOCKERD env)"
    compose down -v --remove-orphans --timeout 20
    if [ -z "$(docker ps -aq)" ]; then
        $DOCKERD stop
    else
        say "other containers run on the engine: leaving it running"
    fi
}

thin_path() {
    eval "$(env_vars)"
    say "thin-path test in mode env against http://127.0.0.1:$GATEWAY_PORT"
    .venv/bin/python -m pytest -p no:cacheprovider tests/integration/test_thin_path.py -q
}

scale_check() {
    say "the replicas' share of the work (uploads through the gateway, events from Kafka):"
    eval "$(env_vars)"
    .venv/bin/python infra/docker/scale_check.py
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    install) install ;;
    up) up "$@" ;;
    env) env_vars ;;
    down) down ;;
    test)
        trap down EXIT # whatever happens, nothing stays up
        up
        thin_path
        ;;
    scale)
        trap down EXIT
        up --scale files=3 --scale trash=2
        scale_check
        ;;
    "") echo "usage: $0 install|up|env|test|scale|down|COMPOSE-ARGS..." >&2; exit 2 ;;
    *)
        engine
        compose "$cmd" "$@"
        ;;
esac
