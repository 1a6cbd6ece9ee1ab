# One multi-stage Dockerfile for the four osmcloud services; pick one with its target:
#
#   docker build --target files -t osmcloud/files .
#
# Targets: auth, files, trash, billing. docker-compose.yml builds each with its own target.
#
# Kept deliberately plain so that it builds with the classic builder as well as BuildKit, on
# older engines (Debian 12's docker.io is 20.10) and without a registry other than the one
# serving the base image: no "# syntax=" line (that would pull a frontend image), no
# RUN --mount, no COPY --link/--chmod, no heredocs.
#
# PYTHON_IMAGE may be swapped for any Debian-like image with Python 3.11+, pip and useradd
# (e.g. one built locally when Docker Hub is out of reach); uv itself comes from PyPI.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: uv + the locked dependencies ----------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

# The uv that wrote uv.lock (uv 0.13). PIP_BREAK_SYSTEM_PACKAGES only matters on a Debian
# Python base (PEP 668); the official image ignores it.
ARG UV_VERSION=0.13.9
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_BREAK_SYSTEM_PACKAGES=1
RUN python3 -m pip install "uv==${UV_VERSION}"

# The virtualenv lives at the path it will have in the final image (its scripts carry
# absolute paths); Python is the base image's own, never a downloaded one.
ENV UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON_PREFERENCE=only-system \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1

WORKDIR /src
# The workspace's shape: uv needs every member's pyproject.toml to read the workspace, even
# when it installs only one member (keep this list in step with [tool.uv.workspace] members;
# tests/compose checks it).
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY services/auth/pyproject.toml services/auth/
COPY services/files/pyproject.toml services/files/
COPY services/trash/pyproject.toml services/trash/
COPY services/billing/pyproject.toml services/billing/
COPY infra/localstack/pyproject.toml infra/localstack/
COPY clients/cli/pyproject.toml clients/cli/

# ---- per service: third-party dependencies first (a layer that survives code changes),
# ---- then the shared library and the service itself, installed as wheels (--no-editable),
# ---- so the final image needs the virtualenv only, not the sources.
FROM build AS build-auth
RUN uv sync --frozen --no-dev --no-install-workspace --package osmcloud-auth
COPY libs/common/src libs/common/src
COPY services/auth/src services/auth/src
RUN uv sync --frozen --no-dev --no-editable --package osmcloud-auth

FROM build AS build-files
RUN uv sync --frozen --no-dev --no-install-workspace --package osmcloud-files
COPY libs/common/src libs/common/src
COPY services/files/src services/files/src
RUN uv sync --frozen --no-dev --no-editable --package osmcloud-files

FROM build AS build-trash
RUN uv sync --frozen --no-dev --no-install-workspace --package osmcloud-trash
COPY libs/common/src libs/common/src
COPY services/trash/src services/trash/src
RUN uv sync --frozen --no-dev --no-editable --package osmcloud-trash

FROM build AS build-billing
RUN uv sync --frozen --no-dev --no-install-workspace --package osmcloud-billing
COPY libs/common/src libs/common/src
COPY services/billing/src services/billing/src
RUN uv sync --frozen --no-dev --no-editable --package osmcloud-billing

# ---- runtime: the base image, an unprivileged user, the service's virtualenv ----------------
FROM ${PYTHON_IMAGE} AS runtime

RUN groupadd --system --gid 10001 osmcloud \
 && useradd --system --uid 10001 --gid osmcloud --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin osmcloud

# Services listen on every interface inside their container (the gateway reaches them over
# the compose network; nothing is published).
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HTTP_HOST=0.0.0.0
WORKDIR /app
# Numeric, so that "runAsNonRoot"-style checks can verify it without /etc/passwd.
USER 10001:10001

# Liveness: /healthz on the service's own port (HTTP_PORT, set per target below). No curl in a
# slim image, so Python does the request; any error or non-2xx status exits non-zero.
# docker-compose.yml replaces this with a /readyz check (Mongo, Kafka, S3 reachable).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['HTTP_PORT'], timeout=4)"]

# ---- the four targets ------------------------------------------------------------------------
FROM runtime AS auth
COPY --from=build-auth /app/.venv /app/.venv
ENV HTTP_PORT=8081
EXPOSE 8081
CMD ["python", "-m", "osmcloud_auth"]

FROM runtime AS files
COPY --from=build-files /app/.venv /app/.venv
ENV HTTP_PORT=8082
EXPOSE 8082
CMD ["python", "-m", "osmcloud_files"]

FROM runtime AS trash
COPY --from=build-trash /app/.venv /app/.venv
ENV HTTP_PORT=8083
EXPOSE 8083
CMD ["python", "-m", "osmcloud_trash"]

FROM runtime AS billing
COPY --from=build-billing /app/.venv /app/.venv
ENV HTTP_PORT=8084
EXPOSE 8084
CMD ["python", "-m", "osmcloud_billing"]
