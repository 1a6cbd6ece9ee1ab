#!/usr/bin/env bash
# A private Docker engine for osmcloud's container runs (tests under testcontainers, compose).
#
#   bash infra/docker/dockerd.sh start    # install docker.io if missing, start, wait until it answers
#   bash infra/docker/dockerd.sh stop     # remove every container and network it has, stop it
#   bash infra/docker/dockerd.sh status
#   bash infra/docker/dockerd.sh env      # prints: export DOCKER_HOST=unix://...
#
# It never touches the default socket /var/run/docker.sock: tools that look for "a Docker
# daemon" there (our own test conftest among them) must keep seeing none, so `make test` stays
# in local-process mode on a machine where this engine runs. Use it with DOCKER_HOST (above).
#
# Everything it owns (override with the variables):
#   OSMCLOUD_DOCKER_RUN   /run/osmcloud-docker       socket, pid file, exec root, log
#   OSMCLOUD_DOCKER_ROOT  /var/lib/osmcloud-docker   data root: images (the image cache), volumes
#
# Networking: no iptables rules, no NAT, no IP forwarding, no default bridge (docker0).
# Containers run either on the host network (listening on 127.0.0.1 only) or on networks
# compose creates; ports are published by docker-proxy on 127.0.0.1 only. Without NAT and
# forwarding, no container traffic can leave this machine.
#
# `stop` keeps images and volumes (they are the cache); it leaves no container, network,
# daemon or containerd behind.
set -uo pipefail

RUN_DIR=${OSMCLOUD_DOCKER_RUN:-/run/osmcloud-docker}
DATA_ROOT=${OSMCLOUD_DOCKER_ROOT:-/var/lib/osmcloud-docker}
SOCK="$RUN_DIR/docker.sock"
PIDFILE="$RUN_DIR/dockerd.pid"
LOG="$RUN_DIR/dockerd.log"
export DOCKER_HOST="unix://$SOCK"

say() { echo "[dockerd] $*"; }
die() {
    echo "[dockerd] FAILED: $1" >&2
    shift
    for line in "$@"; do echo "[dockerd]   $line" >&2; done
    exit 1
}

SUDO=""
if [ "$(id -u)" != "0" ]; then
    command -v sudo >/dev/null 2>&1 || die "dockerd needs root; run as root or install sudo"
    SUDO="sudo"
fi

daemon_pid() {
    # the PID from our pid file, only if that process is a dockerd serving our socket
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "dockerd .*unix://$SOCK" || return 1
    echo "$pid"
}

answers() {
    docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

install_engine() {
    command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1 && return 0
    command -v apt-get >/dev/null 2>&1 || die "dockerd not found and no apt-get" "install a Docker engine (dockerd + docker CLI) by hand"
    say "installing Debian's docker.io (apt-get) without starting its system service"
    # The package's own service would listen on the default socket: keep services from starting
    # during the install (as bootstrap.sh does for nginx) unless a policy already exists.
    local own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null && $SUDO chmod +x /usr/sbin/policy-rc.d && own_policy=1
    fi
    local rc=0
    {
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io
    } >"/tmp/osmcloud-docker-apt.$$.log" 2>&1 || rc=$?
    [ $own_policy = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
    if [ $rc != 0 ]; then
        tail -n 15 "/tmp/osmcloud-docker-apt.$$.log" | sed 's/^/[dockerd]   | /' >&2
        die "apt-get install docker.io failed" "run by hand: apt-get update && apt-get install -y docker.io"
    fi
    rm -f "/tmp/osmcloud-docker-apt.$$.log"
    command -v dockerd >/dev/null 2>&1 || die "dockerd still missing after installing docker.io"
}

start() {
    if pid=$(daemon_pid) && answers; then
        say "already running (pid $pid), $DOCKER_HOST"
        return 0
    fi
    install_engine
    if pid=$(daemon_pid); then
        die "a dockerd (pid $pid) holds $SOCK but does not answer" "see $LOG; stop it with: bash infra/docker/dockerd.sh stop"
    fi
    $SUDO mkdir -p "$RUN_DIR" "$DATA_ROOT" || die "cannot create $RUN_DIR / $DATA_ROOT"
    # our own (empty) configuration file, so /etc/docker/daemon.json is never read
    echo '{}' | $SUDO tee "$RUN_DIR/daemon.json" >/dev/null
    $SUDO rm -f "$SOCK" "$PIDFILE"
    say "starting dockerd: socket $SOCK, data root $DATA_ROOT, log $LOG"
    local t0=$SECONDS
    # setsid: the daemon outlives this shell and gets no terminal signals.
    $SUDO setsid dockerd \
        -H "unix://$SOCK" \
        --data-root "$DATA_ROOT" \
        --exec-root "$RUN_DIR/exec" \
        --pidfile "$PIDFILE" \
        --config-file "$RUN_DIR/daemon.json" \
        --iptables=false --ip-forward=false --ip-masq=false --bridge=none \
        --userland-proxy=true \
        --log-level=warn \
        </dev/null >"$LOG" 2>&1 &
    local deadline=$((SECONDS + 60))
    until answers; do
        if [ $SECONDS -gt $deadline ]; then
            tail -n 20 "$LOG" | sed 's/^/[dockerd]   | /' >&2
            die "dockerd did not answer on $SOCK within 60 s (log above: $LOG)"
        fi
        if ! kill -0 $! 2>/dev/null && ! daemon_pid >/dev/null; then
            tail -n 20 "$LOG" | sed 's/^/[dockerd]   | /' >&2
            die "dockerd exited during startup (log above: $LOG)"
        fi
        sleep 0.3
    done
    say "ready after $((SECONDS - t0)) s: engine $(docker version --format '{{.Server.Version}}'), storage $(docker info --format '{{.Driver}}')"
    say "use it with: export DOCKER_HOST=$DOCKER_HOST"
}

stop() {
    local pid
    if ! pid=$(daemon_pid); then
        say "not running"
        $SUDO rm -f "$SOCK" "$PIDFILE"
        return 0
    fi
    if answers; then
        local ids nets
        ids=$(docker ps -aq)
        if [ -n "$ids" ]; then
            say "removing $(echo "$ids" | wc -l) container(s)"
            # shellcheck disable=SC2086
            docker rm -f -v $ids >/dev/null || say "could not remove every container (see docker ps -a)"
        fi
        nets=$(docker network ls -q --filter type=custom)
        if [ -n "$nets" ]; then
            say "removing $(echo "$nets" | wc -l) network(s)"
            # shellcheck disable=SC2086
            docker network rm $nets >/dev/null || say "could not remove every network (see docker network ls)"
        fi
    else
        say "daemon (pid $pid) does not answer: stopping it without cleaning up first"
    fi
    say "stopping dockerd (pid $pid)"
    $SUDO kill -TERM "$pid"
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
        if [ $SECONDS -gt $deadline ]; then
            say "dockerd did not stop within 30 s: killing it"
            $SUDO kill -KILL "$pid"
            break
        fi
        sleep 0.3
    done
    # dockerd stops the containerd it started; make sure nothing of ours is left.
    local left
    left=$(pgrep -f -- "$RUN_DIR/exec/containerd" || true)
    if [ -n "$left" ]; then
        say "stopping leftover containerd process(es): $left"
        # shellcheck disable=SC2086
        $SUDO kill -TERM $left 2>/dev/null || true
    fi
    $SUDO rm -f "$SOCK" "$PIDFILE"
    say "stopped"
}

status() {
    local pid
    if pid=$(daemon_pid); then
        if answers; then
            say "running (pid $pid) at $DOCKER_HOST: $(docker ps -q | wc -l) running container(s), $(docker ps -aq | wc -l) in all, $(docker network ls -q --filter type=custom | wc -l) network(s), $(docker images -q | sort -u | wc -l) image(s)"
        else
            say "process $pid exists but does not answer on $SOCK (log: $LOG)"
            return 1
        fi
    else
        say "not running"
        return 3
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) echo "export DOCKER_HOST=$DOCKER_HOST" ;;
    *)
        echo "usage: $0 start|stop|status|env" >&2
        exit 2
        ;;
esac
