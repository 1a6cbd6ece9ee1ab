"""Fixtures for black-box integration tests against a real osmcloud system.

Where the system comes from is chosen once per run and printed in the pytest header
(implementation: ``osmcloud_localstack.testing``):

  env             OSMCLOUD_GATEWAY_URL (and the other OSMCLOUD_* variables, see
                  ``osmcloud_localstack.testing.ENV_VARS``) name a running system; nothing is
                  started or stopped. ``osmcloud-stack env`` prints them for a stack from ``make up``.
  testcontainers  a Docker daemon answers a ping (DOCKER_HOST): Kafka (apache/kafka:4.1.1), MongoDB
                  (mongo:7) and versitygw (versity/versitygw:v1.8.0) as containers - or, where those
                  cannot be pulled, our local builds (osmcloud-local/kafka, /ferretdb, /versitygw;
                  ``make test-containers`` builds them) - on the host network, 127.0.0.1 only; the
                  SMTP sink, the four services and nginx as local processes. A container that dies
                  while tests run stops the run with its name, exit code and last log lines.
  local           otherwise: everything as local processes (infra/localstack) on base port 28080,
                  state in .state/test (wiped at start), TEST_CLOCK=true, stopped at session end
                  even when tests fail.
  OSMCLOUD_TEST_MODE=env|testcontainers|local forces a mode.

Fixtures:
  stack         (session) StackHandle: gateway_url, mongo_url, kafka_bootstrap, s3_endpoint,
                s3_access_key, s3_secret_key, s3_bucket, s3_secure, smtp_host, smtp_port,
                smtp_sink_url, gateway_secret, topic_prefix, db_prefix, services, mode,
                url(path) -> gateway URL of path, stop_kafka() / start_kafka() (blocking: call
                them as ``await asyncio.to_thread(stack.stop_kafka)``; the test is skipped where
                Kafka is not ours to stop)
  http          (session) aiohttp.ClientSession without base URL: ``http.get(stack.url("/api/..."))``
  smtp          (session) SmtpSinkClient: ``await smtp.wait_for(address)`` -> newest mail to it
                ({"to", "from", "subject", "body", "received_at"}), polling until one arrives
  unique_email  (function) a fresh address, so every test has its own user
  supervised_stack (function) the stack where its processes are ours (kill, stop_service,
                process_info, wait_ready), else the test is skipped
  files_data    (function) FilesData: read-only looks at files' database and the bucket
                (versions, head, blob_keys, wait_purged) to prove bytes are gone
  receipts      (session) SandboxReceipts: ``receipts.sign(order_id, purchased_at, expires_at)``,
                a Pro receipt signed with the stack's own sandbox key (billing has no default)
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from datetime import datetime

import aiohttp
import pytest
from minio import Minio
from pymongo import AsyncMongoClient

from osmcloud_billing.receipts import sign_sandbox_receipt
from osmcloud_localstack import testing
from osmcloud_localstack.client import GatewayClient, eventually
from osmcloud_localstack.testing import CannotControl, SmtpSinkClient, StackHandle, StackUnavailable


def pytest_report_header(config: pytest.Config) -> list[str]:
    mode, why = testing.select_mode()
    return [f"osmcloud integration stack: mode={mode} ({why})"]


class _SkippingHandle(StackHandle):
    """StackHandle whose stop_kafka/start_kafka skip the test where Kafka cannot be controlled."""

    def stop_kafka(self) -> None:
        try:
            super().stop_kafka()
        except CannotControl as exc:
            pytest.skip(str(exc))

    def start_kafka(self) -> None:
        try:
            super().start_kafka()
        except CannotControl as exc:
            pytest.skip(str(exc))


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> Iterator[StackHandle]:
    mode, why = testing.select_mode()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def say(msg: str) -> None:
        """Progress lines on the terminal, even while pytest captures output."""
        line = f"[stack] {msg}"
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            if reporter is not None:
                reporter.ensure_newline()
                reporter.write_line(line)
            else:
                print(line, flush=True)

    say(f"mode {mode}: {why}")
    restore_signal = None
    if mode == "env":
        source: Generator[StackHandle, None, None] = testing.env_stack()
    elif mode == "testcontainers":
        restore_signal = signal.signal(signal.SIGUSR1, _stop_run_for_dead_container)
        source = testing.testcontainers_stack(say, on_death=_container_died)
    else:
        source = testing.local_stack(say)
    try:
        handle = next(source)
    except StackUnavailable as exc:
        pytest.exit(str(exc), returncode=3)
    handle.__class__ = _SkippingHandle
    try:
        yield handle
    finally:
        source.close()  # runs the generator's teardown: stops what it started
        if restore_signal is not None:
            signal.signal(signal.SIGUSR1, restore_signal)


# A container killed mid-test must not look like a hanging test: the watchdog thread records the
# death and signals the main thread, whose handler ends the run naming the container.
_DEATHS: list[object] = []
_RUNNING: list[str] = []  # node id of the test running now


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    _RUNNING[:] = [nodeid]


def _container_died(death: object) -> None:
    _DEATHS.append(death)
    signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)  # type: ignore[arg-type]


def _stop_run_for_dead_container(signum: int, frame: object) -> None:
    if _DEATHS:
        during = f" during {_RUNNING[0]}" if _RUNNING else ""
        pytest.exit(f"stopping the run{during}: {_DEATHS[0]}", returncode=3)


@pytest.fixture
def supervised_stack(stack: StackHandle) -> StackHandle:
    """The stack, where its processes run here under their supervisor (modes local and
    testcontainers): fault tests kill, stop and start them. Skips otherwise, saying why."""
    if stack.local is None or not stack.local.supervised():
        pytest.skip(f"mode {stack.mode}: the stack's processes are not ours to kill or stop")
    return stack


@pytest.fixture
async def gateway(stack: StackHandle) -> AsyncIterator[GatewayClient]:
    """The API as an app sees it: the gateway, without a token (`login` gives one)."""
    async with aiohttp.ClientSession() as session:
        yield GatewayClient(session, stack.gateway_url)


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


@pytest.fixture(scope="session")
async def smtp(stack: StackHandle, http: aiohttp.ClientSession) -> SmtpSinkClient:
    return SmtpSinkClient(stack.smtp_sink_url, http)


PRO_PRODUCT = "osmcloud.pro.monthly"


class SandboxReceipts:
    """Receipts as the sandbox store hands them out, signed with the stack's key."""

    def __init__(self, key: str) -> None:
        self.key = key

    def sign(self, order_id: str, purchased_at: datetime, expires_at: datetime, product_id: str = PRO_PRODUCT) -> str:
        return sign_sandbox_receipt(self.key, platform="sandbox", order_id=order_id, product_id=product_id,
                                    purchased_at=purchased_at, expires_at=expires_at)


@pytest.fixture(scope="session")
def receipts(stack: StackHandle) -> SandboxReceipts:
    assert stack.sandbox_receipt_key, "the test stack runs billing's sandbox store"
    return SandboxReceipts(stack.sandbox_receipt_key)


@pytest.fixture
def unique_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.test"


class FilesData:
    """Read-only looks at files' own database and the blob bucket."""

    def __init__(self, stack) -> None:
        self.stack = stack
        self.mongo = AsyncMongoClient(stack.mongo_url, tz_aware=True)
        self.db = self.mongo[f"{stack.db_prefix}files"]
        self.s3 = Minio(stack.s3_endpoint, access_key=stack.s3_access_key, secret_key=stack.s3_secret_key,
                        secure=stack.s3_secure)

    async def versions(self, user_id: str, file_type: str, name: str) -> list[dict]:
        return await self.db["versions"].find({"user_id": user_id, "type": file_type, "name": name}).to_list(None)

    async def head(self, user_id: str, file_type: str, name: str) -> dict | None:
        return await self.db["heads"].find_one({"_id": f"{user_id}/{file_type}/{name}"})

    async def blob_keys(self, user_id: str) -> set[str]:
        def _list():
            return {o.object_name for o in self.s3.list_objects(self.stack.s3_bucket, prefix=f"users/{user_id}/",
                                                               recursive=True)}
        return await asyncio.to_thread(_list)

    async def wait_purged(self, user_id: str, file_type: str, name: str, blob_keys: set[str], timeout: float = 120):
        async def gone():
            if await self.versions(user_id, file_type, name) or await self.head(user_id, file_type, name):
                return False
            return not (blob_keys & await self.blob_keys(user_id))
        await eventually(gone, timeout=timeout, what=f"{file_type}/{name}: versions, head and blobs removed")

    async def close(self) -> None:
        await self.mongo.close()


@pytest.fixture
async def files_data(stack):
    """Read-only looks at files' database and the bucket (to prove bytes are gone)."""
    data = FilesData(stack)
    yield data
    await data.close()
