#!/usr/bin/env bash
# `make test-containers`: the whole test suite with Kafka, the MongoDB-protocol server and the
# S3 server in containers (conftest mode "testcontainers"), on our private Docker engine.
#
#   PYTEST_ARGS='tests/integration -x' bash infra/docker/test-containers.sh
#
# 1. starts our engine (infra/docker/dockerd.sh; installs docker.io the first time) unless it runs
#    - or uses the engine an explicit DOCKER_HOST names, if that one answers;
# 2. builds the local images the containers need where the official ones cannot be pulled
#    (python -m osmcloud_localstack.images build --skip-pullable testcontainers; cached:
#    under a second when warm);
# 3. runs pytest with DOCKER_HOST pointing at that engine and OSMCLOUD_TEST_MODE=testcontainers;
# 4. stops what the run left (the test stack's local processes; the engine, if this script
#    started it - leaving no container, network or daemon behind). pytest's exit code is kept.
# bootstrap.sh must have run (make test-containers does that first).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

DOCKERD="bash infra/docker/dockerd.sh"
STACK=.venv/bin/osmcloud-stack
T0=$SECONDS

started_engine=0
if [ -n "${DOCKER_HOST:-}" ] && docker version >/dev/null 2>&1; then
    # an engine named explicitly (and answering) is used as it is, and left as it is
    echo "[test-containers] using the Docker engine at DOCKER_HOST=$DOCKER_HOST"
    started_engine=-1
else
    if ! $DOCKERD status >/dev/null 2>&1; then
        $DOCKERD start || { echo "[test-containers] FAILED: the Docker engine did not start (see above)"; exit 1; }
        started_engine=1
    fi
    eval "$($DOCKERD env)"
fi

cleanup() {
    $STACK down --state-dir .state/test-tc >/dev/null 2>&1 || true
    if [ $started_engine = 1 ] && [ -n "$(docker ps -aq 2>/dev/null)" ]; then
        echo "[test-containers] leaving the engine running: containers that are not this run's use it (docker ps)"
    elif [ $started_engine = 1 ]; then
        $DOCKERD stop
    elif [ $started_engine = 0 ]; then
        echo "[test-containers] leaving the engine running (it was running before): bash infra/docker/dockerd.sh stop"
    fi
}
trap cleanup EXIT

echo "[test-containers] images for the test containers (official where pullable, else local builds)"
T1=$SECONDS
.venv/bin/python -m osmcloud_localstack.images build --skip-pullable testcontainers || {
    echo "[test-containers] FAILED: an image did not build (the step is named above)"
    exit 1
}
echo "[test-containers] images ready in $((SECONDS - T1)) s"

T2=$SECONDS
rc=0
# shellcheck disable=SC2086 - PYTEST_ARGS holds several words on purpose (as in `make test`)
DOCKER_HOST=$DOCKER_HOST OSMCLOUD_TEST_MODE=testcontainers TESTCONTAINERS_RYUK_DISABLED=true \
    .venv/bin/python -m pytest ${PYTEST_ARGS:-} || rc=$?
echo "[test-containers] pytest took $((SECONDS - T2)) s (exit code $rc); whole run $((SECONDS - T0)) s"
[ $rc = 5 ] && echo "[test-containers] FAILED: pytest collected no tests (exit code 5)"
exit $rc
