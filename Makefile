# osmcloud: the two commands (see docs/operations.md).
#   make up     install what is missing (infra/bootstrap.sh), start the whole system on port 8080
#               (PROMETHEUS=1: with Prometheus on port 8096 watching it)
#   make down   stop what `make up` started (its supervisor first, then every process)
#   make status every process: state, restarts, last exit (JSON=1: as JSON)
#   make test   install what is missing, run unit + integration tests on their own stack
#               (base port 28080, state in .state/test), then stop that stack even on failure
#   make test-containers   the same tests with Kafka, MongoDB-protocol and S3 servers in containers
#               on our own Docker engine (infra/docker/; see docs/operations.md "Tests")
SHELL := /bin/bash
.DEFAULT_GOAL := help

STACK := .venv/bin/osmcloud-stack
UP_STATE := .state/up
UP_PORT ?= 8080
# PROMETHEUS=1: make up also runs Prometheus (base port + 16) with deploy/prometheus/alerts.yml
PROMETHEUS ?=
TEST_STATE := .state/test
PYTEST_ARGS ?=

.PHONY: help bootstrap up down status test lint chaos

help:
	@echo "make up | make down | make status | make test [PYTEST_ARGS='-k kafka'] | make bootstrap"
	@echo "make chaos [CHAOS_ARGS='--kills 1 --faults files,kafka']"
	@echo "make test-containers [PYTEST_ARGS=...] | make images [IMAGES='kafka nginx'] | make docker-start | make docker-stop"
	@echo "make compose-up | make compose-test | make compose-scale | make compose-down"

bootstrap:
	@bash infra/bootstrap.sh

# Secrets (gateway secret, S3 keys, sandbox key) are generated once per state directory and kept
# in $(UP_STATE)/stack.json (mode 0600, git-ignored). SANDBOX_STORE=1 turns on billing's sandbox
# store (signed test receipts; never in a deployment).
up: bootstrap
	@$(STACK) up --base-port $(UP_PORT) --state-dir $(UP_STATE) $(if $(filter 1 true yes,$(SANDBOX_STORE)),--sandbox-store) $(if $(filter 1 true yes,$(PROMETHEUS)),--prometheus)

down:
	@if [ -x $(STACK) ]; then $(STACK) down --state-dir $(UP_STATE); \
	else echo "nothing to stop: no .venv (run make up first)"; fi

status:
	@$(STACK) status --state-dir $(UP_STATE) $(if $(filter 1 true yes,$(JSON)),--json)

# ruff (lint and import order), mypy (strict) and vulture (dead code) on all Python; `make test` runs the same checks (tests/contract/test_code_quality.py)
lint: bootstrap
	@.venv/bin/ruff check . && .venv/bin/mypy && .venv/bin/vulture

# pytest's exit code is preserved; the test stack is stopped whatever happened (also on Ctrl-C).
# Exit code 5 (no tests collected) fails the target with a message.
test: bootstrap
	@trap '$(STACK) down --state-dir $(TEST_STATE) >/dev/null 2>&1 || true' EXIT; \
	rc=0; .venv/bin/python -m pytest $(PYTEST_ARGS) || rc=$$?; \
	echo "[make test] stopping anything the test stack left running"; \
	$(STACK) down --state-dir $(TEST_STATE) || true; \
	if [ $$rc -eq 5 ]; then echo "[make test] FAILED: pytest collected no tests (exit code 5)"; fi; \
	if [ $$rc -ne 0 ]; then echo "[make test] pytest exit code $$rc"; fi; \
	exit $$rc

# SIGKILL to every process of its own stack in turn under a client mix; invariants after each
# fault; one table; non-zero exit on any violation (benchmarks/chaos.py, docs/faults.md)
CHAOS_ARGS ?=
chaos: bootstrap
	@.venv/bin/python benchmarks/chaos.py $(CHAOS_ARGS)

# ---- containers: our own Docker engine on its own socket (never /var/run/docker.sock, so
# ---- `make test` stays in local-process mode), images built here, testcontainers, compose.
.PHONY: test-containers images docker-start docker-stop compose-up compose-test compose-scale compose-down

test-containers: bootstrap
	@PYTEST_ARGS="$(PYTEST_ARGS)" bash infra/docker/test-containers.sh

IMAGES ?= all
images: bootstrap docker-start
	@eval "$$(bash infra/docker/dockerd.sh env)" && .venv/bin/python -m osmcloud_localstack.images build $(IMAGES)

docker-start:
	@bash infra/docker/dockerd.sh start

docker-stop:
	@bash infra/docker/dockerd.sh stop

compose-up compose-test compose-scale compose-down: bootstrap
	@bash infra/docker/compose.sh $(subst compose-,,$@)
