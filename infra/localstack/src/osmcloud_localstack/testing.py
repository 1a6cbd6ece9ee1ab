"""Test-side support for black-box tests against a real osmcloud system (used by
tests/integration/conftest.py): where the system comes from, and small clients.

Modes (chosen once per run, see ``select_mode``):
  env             OSMCLOUD_GATEWAY_URL is set: a running system named by environment variables
                  (``ENV_VARS``; ``osmcloud-stack env`` prints them for a stack from ``make up``).
  testcontainers  a Docker daemon answers a ping (DOCKER_HOST, else the default socket): Kafka,
                  the MongoDB-protocol server and the S3 server as containers (see containers.py);
                  the SMTP sink, the four services and nginx as local processes.
  local           otherwise: everything as local processes on base port 28080, state in
                  .state/test (wiped at start), TEST_CLOCK=true, torn down at the end.
  OSMCLOUD_TEST_MODE=env|testcontainers|local forces a mode; a forced testcontainers mode whose
  daemon does not answer falls back to local, saying why (`make test-containers` sets it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from .paths import repo_root, service_available
from .ports import PortLayout
from .stack import SERVICES, Stack, StackConfig, StackError, wipe_state_dir


class StackUnavailable(RuntimeError):
    """The test system could not be started or is not fully named; the message says why."""


class CannotControl(RuntimeError):
    """Raised by stop_kafka/start_kafka where the system is not ours to stop."""


REPO = repo_root()
# The test stack trusts 127.0.0.1 as a proxy in front of the gateway (tests act as one with
# X-Forwarded-For); every other loopback address (127.x.y.z) is a client outside it.
TEST_TRUSTED_PROXIES = ("127.0.0.1/32",)
LOCAL_BASE_PORT = int(os.environ.get("OSMCLOUD_TEST_BASE_PORT", "28080"))
LOCAL_STATE_DIR = Path(os.environ.get("OSMCLOUD_TEST_STATE_DIR", str(REPO / ".state" / "test")))

# env mode: variable -> StackHandle attribute (the first one is required and selects the mode)
ENV_VARS = {
    "OSMCLOUD_GATEWAY_URL": "gateway_url",
    "OSMCLOUD_MONGO_URL": "mongo_url",
    "OSMCLOUD_KAFKA_BOOTSTRAP": "kafka_bootstrap",
    "OSMCLOUD_S3_ENDPOINT": "s3_endpoint",
    "OSMCLOUD_S3_ACCESS_KEY": "s3_access_key",
    "OSMCLOUD_S3_SECRET_KEY": "s3_secret_key",
    "OSMCLOUD_S3_BUCKET": "s3_bucket",
    "OSMCLOUD_SMTP_HOST": "smtp_host",
    "OSMCLOUD_SMTP_PORT": "smtp_port",
    "OSMCLOUD_SMTP_SINK_URL": "smtp_sink_url",
    "OSMCLOUD_GATEWAY_SECRET": "gateway_secret",
    "OSMCLOUD_TOPIC_PREFIX": "topic_prefix",
    "OSMCLOUD_DB_PREFIX": "db_prefix",
    "OSMCLOUD_SANDBOX_RECEIPT_KEY": "sandbox_receipt_key",
    "OSMCLOUD_OPERATOR_TOKEN": "operator_token",
}


@dataclass
class StackHandle:
    mode: str
    gateway_url: str
    mongo_url: str
    kafka_bootstrap: str
    s3_endpoint: str
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_bucket: str = "osmcloud-blobs"
    s3_secure: bool = False
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_sink_url: str = "http://127.0.0.1:2526"
    gateway_secret: str = ""
    topic_prefix: str = "osmcloud."
    db_prefix: str = "osmcloud_"
    # key of billing's sandbox store ("" when it is off: then no receipt verifies)
    sandbox_receipt_key: str = ""
    # the admin API's operator token ("" when the stack runs without the admin API)
    operator_token: str = ""
    # where the stack's processes write their logs ("" when they are not on this machine)
    logs_dir: str = ""
    services: bool = True
    # each service's own address (not through the gateway): they report the test clock they read, and
    # the test controls the stack there
    service_urls: dict[str, str] = field(default_factory=dict)
    _stop_kafka: Callable[[], None] | None = field(default=None, repr=False)
    _start_kafka: Callable[[], None] | None = field(default=None, repr=False)
    _stop_process: Callable[[str], str] | None = field(default=None, repr=False)
    _start_process: Callable[..., None] | None = field(default=None, repr=False)
    # the Stack whose processes run on this machine (modes local and testcontainers), else None
    local: Stack | None = field(default=None, repr=False)

    def url(self, path: str) -> str:
        return self.gateway_url.rstrip("/") + path

    def stop_kafka(self) -> None:
        """Stop Kafka (blocking); CannotControl where the system is not ours to stop (conftest skips then)."""
        if self._stop_kafka is None:
            raise CannotControl(f"cannot stop Kafka in mode {self.mode!r}")
        self._stop_kafka()

    def start_kafka(self) -> None:
        """Start Kafka again and wait until it serves metadata (blocking)."""
        if self._start_kafka is None:
            raise CannotControl(f"cannot start Kafka in mode {self.mode!r}")
        self._start_kafka()

    def controls(self, name: str) -> bool:
        """Whether `name` is a process this stack runs itself (not a container or a server
        named from outside, as the servers are in mode testcontainers)."""
        return self.local is not None and name in self.local.process_names()

    def stop_service(self, name: str) -> None:
        """Stop one service's process (blocking); CannotControl where the system is not ours."""
        if self._stop_process is None or (self.local is not None and not self.controls(name)):
            raise CannotControl(f"cannot stop {name} in mode {self.mode!r}")
        self._stop_process(name)

    def start_service(self, name: str, extra_env: dict[str, str] | None = None) -> None:
        """Start a stopped service again and wait until it is ready (blocking); `extra_env` is
        added to its environment until it is restarted without."""
        if self._start_process is None:
            raise CannotControl(f"cannot start {name} in mode {self.mode!r}")
        if extra_env:
            self._start_process(name, extra_env)
        else:
            self._start_process(name)

    def _control(self, what: str) -> Stack:
        if self.local is None or not self.local.supervised():
            raise CannotControl(f"cannot {what} in mode {self.mode!r}: no supervised local stack")
        return self.local

    def kill(self, name: str, sig: int = 9) -> int:
        """Send `sig` (SIGKILL) to one process of the stack (a service or a server), as a crash
        would; returns its PID. Its supervisor restarts it (process_info, wait_ready)."""
        if not self.controls(name):
            raise CannotControl(f"cannot kill {name} in mode {self.mode!r}: not a process of this stack")
        rec = self._control(f"kill {name}").procs.running(name)
        if rec is None:
            raise AssertionError(f"{name} is not running")
        os.kill(rec.pid, sig)
        return rec.pid

    def process_info(self, name: str) -> dict[str, Any]:
        """What the supervisor saw of `name`: state, pid, restarts, last_exit, ... (Stack.process_info)."""
        return self._control("read the supervisor's status").process_info().get(name, {})

    def wait_ready(self, name: str, timeout: float) -> None:
        """Wait (blocking) until `name` runs again and answers its readiness probe."""
        self._control(f"wait for {name}").wait_ready(name, timeout)


# ---- mode selection -------------------------------------------------------------------------
_MODE: tuple[str, str] | None = None


def _docker_answers() -> tuple[bool, str]:
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            client.ping()
        finally:
            client.close()
        return True, f"Docker daemon answered at {_docker_host()}"
    except Exception as exc:  # noqa: BLE001 - any failure means "no usable daemon"
        return False, f"no Docker daemon answers at {_docker_host()} ({type(exc).__name__}: {str(exc)[:160]})"


def _docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or "the default socket (DOCKER_HOST unset)"


def select_mode() -> tuple[str, str]:
    """(mode, why) - computed once per run."""
    global _MODE
    if _MODE is None:
        forced = os.environ.get("OSMCLOUD_TEST_MODE", "").strip().lower()
        if forced:
            if forced not in ("env", "testcontainers", "local"):
                raise StackUnavailable("OSMCLOUD_TEST_MODE must be env, testcontainers or local")
            _MODE = (forced, "forced by OSMCLOUD_TEST_MODE")
            if forced == "testcontainers":
                ok, why = _docker_answers()
                if not ok:  # no engine: the tests still run, on local processes, and say why
                    _MODE = ("local", f"OSMCLOUD_TEST_MODE=testcontainers, but {why}: falling back to local processes "
                                      f"on base port {LOCAL_BASE_PORT}")
        elif os.environ.get("OSMCLOUD_GATEWAY_URL"):
            _MODE = ("env", f"OSMCLOUD_GATEWAY_URL={os.environ['OSMCLOUD_GATEWAY_URL']}")
        else:
            ok, why = _docker_answers()
            if ok:
                _MODE = ("testcontainers", why)
            else:
                _MODE = ("local", f"{why}; local processes on base port {LOCAL_BASE_PORT}, state {LOCAL_STATE_DIR}")
    return _MODE


def services_present() -> bool:
    return all(service_available(REPO, s) for s in SERVICES)


def from_env() -> StackHandle:
    values: dict[str, Any] = {}
    missing = []
    for var, attr in ENV_VARS.items():
        if var in os.environ:
            values[attr] = os.environ[var]
        elif attr in ("gateway_url", "mongo_url", "kafka_bootstrap", "s3_endpoint", "smtp_sink_url"):
            missing.append(var)
    if missing:
        raise StackUnavailable(f"mode env needs {', '.join(missing)} (osmcloud-stack env --state-dir D prints them)")
    if "smtp_port" in values:
        values["smtp_port"] = int(values["smtp_port"])
    values["s3_secure"] = os.environ.get("OSMCLOUD_S3_SECURE", "false").lower() in ("1", "true", "yes")
    urls = os.environ.get("OSMCLOUD_SERVICE_URLS", "")
    values["service_urls"] = dict(pair.split("=", 1) for pair in urls.split(",") if "=" in pair)
    return StackHandle(mode="env", **values)


def env_stack() -> Iterator[StackHandle]:
    """Mode env: the running system named by OSMCLOUD_* variables; nothing to start or stop."""
    yield from_env()


def _handle(mode: str, endpoints: Any, services: bool, **kw: Any) -> StackHandle:
    e = endpoints
    return StackHandle(
        mode=mode,
        gateway_url=e.gateway_url,
        mongo_url=e.mongo_url,
        kafka_bootstrap=e.kafka_bootstrap,
        s3_endpoint=e.s3_endpoint,
        s3_access_key=e.s3_access_key,
        s3_secret_key=e.s3_secret_key,
        s3_bucket=e.s3_bucket,
        s3_secure=e.s3_secure,
        smtp_host=e.smtp_host,
        smtp_port=e.smtp_port,
        smtp_sink_url=e.smtp_sink_url,
        gateway_secret=e.gateway_secret,
        topic_prefix=e.topic_prefix,
        db_prefix=e.db_prefix,
        sandbox_receipt_key=e.sandbox_receipt_key,
        operator_token=e.operator_token,
        logs_dir=str(Path(e.state_dir) / "logs"),
        services=services,
        service_urls=dict(e.service_urls) if services else {},
        **kw,
    )


def local_stack(say: Callable[[str], None]) -> Iterator[StackHandle]:
    services = services_present()
    if not services:
        say("service packages not found (services/*/src/osmcloud_*/__main__.py): starting infra + gateway only")
    say(f"wiping {LOCAL_STATE_DIR}")
    wipe_state_dir(LOCAL_STATE_DIR)
    stack = Stack(
        StackConfig(state_dir=LOCAL_STATE_DIR, base_port=LOCAL_BASE_PORT, test_clock=True, services=services,
                    sandbox_store=True, admin_api=True, trusted_proxies=TEST_TRUSTED_PROXIES),
        log=say,
    )
    try:
        try:
            endpoints = stack.up()
        except StackError as exc:
            raise StackUnavailable(f"the local test stack did not start:\n{exc}") from exc
        yield _handle(
            "local",
            endpoints,
            services,
            _stop_kafka=lambda: stack.stop_process("kafka"),
            _start_kafka=lambda: stack.start_process("kafka"),
            _stop_process=stack.stop_process,
            _start_process=stack.start_process,
            local=stack,
        )
    finally:
        say("stopping the local test stack")
        stack.down()


def testcontainers_stack(say: Callable[[str], None],
                         on_death: Callable[[Any], None] | None = None) -> Iterator[StackHandle]:
    """Kafka, the MongoDB-protocol server and the S3 server as containers (osmcloud_localstack.containers:
    host network, 127.0.0.1, the local layout's ports; official images where they can be had, our local
    builds otherwise); the SMTP sink, the services and nginx as local processes against them.
    ``on_death(death)`` is called (from a watchdog thread) when a container dies while tests run."""
    from .containers import ContainerError, ContainerInfra

    infra = ContainerInfra(PortLayout(LOCAL_BASE_PORT), say=say, on_death=on_death)
    state_dir = LOCAL_STATE_DIR.with_name(LOCAL_STATE_DIR.name + "-tc")
    stack = None
    try:
        try:
            external = infra.start()
        except ContainerError as exc:
            raise StackUnavailable(f"the test containers did not start:\n{exc}") from exc
        wipe_state_dir(state_dir)
        services = services_present()
        stack = Stack(
            StackConfig(state_dir=state_dir, base_port=LOCAL_BASE_PORT, test_clock=True, services=services,
                        external=external, sandbox_store=True, admin_api=True,
                        trusted_proxies=TEST_TRUSTED_PROXIES),
            log=say,
        )
        try:
            endpoints = stack.up()  # waits for the containers' Kafka/Mongo/S3 first
        except StackError as exc:
            raise StackUnavailable(f"the test stack did not start:\n{exc}") from exc
        yield _handle("testcontainers", endpoints, services, _stop_kafka=infra.stop_kafka,
                      _start_kafka=infra.start_kafka, _stop_process=stack.stop_process,
                      _start_process=stack.start_process, local=stack)
    finally:
        if stack is not None:
            say("stopping the local processes of the test stack")
            stack.down()
        say("removing the test containers")
        infra.close()
        shutil.rmtree(state_dir, ignore_errors=True)


class SmtpSinkClient:
    """Reads mails from the SMTP sink's HTTP API."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session

    async def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        params = {"to": to} if to else {}
        async with self.session.get(f"{self.base_url}/messages", params=params) as resp:
            resp.raise_for_status()
            mails: list[dict[str, Any]] = await resp.json()
            return mails

    async def wait_for(self, to: str, timeout: float = 30.0, count: int = 1) -> dict[str, Any]:
        """The newest mail to ``to`` once at least ``count`` arrived (AssertionError on timeout)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = await self.messages(to)
            if len(found) >= count:
                return found[-1]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no mail to {to} within {timeout:.0f} s (have {len(found)}, want {count})")
            await asyncio.sleep(0.2)

    async def clear(self, to: str | None = None) -> None:
        params = {"to": to} if to else {}
        async with self.session.delete(f"{self.base_url}/messages", params=params) as resp:
            resp.raise_for_status()


async def advance_clock(stack: StackHandle, seconds: float) -> None:
    """Moves every service's clock forward by `seconds` (never back): for tests that must
    pass a cooldown or an expiry."""
    from datetime import timedelta

    from pymongo import AsyncMongoClient

    from osmcloud_common.clock import advance_shared_clock

    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongo_url)
    try:
        await advance_shared_clock(mongo, timedelta(seconds=seconds), confirm=clock_confirmer(stack))
    finally:
        await mongo.close()


async def service_now(stack: StackHandle) -> datetime:
    """What the services' clock reads now: the wall clock plus the shared offset that tests
    move (so a receipt or a deadline is dated in the services' time)."""
    from pymongo import AsyncMongoClient

    from osmcloud_common.clock import shared_offset

    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongo_url)
    try:
        return datetime.now(UTC) + await shared_offset(mongo)
    finally:
        await mongo.close()


def clock_confirmer(stack: StackHandle) -> Callable[[float], Awaitable[None]] | None:
    """`confirm(set_at)` for osmcloud_common.clock: waits until every service reports (on its
    /healthz) that it applied the clock setting written at `set_at` — a confirmation, not a
    guess of how long they take. None when the services' addresses are unknown (mode env
    without OSMCLOUD_SERVICE_URLS): then the clock helpers wait a fixed 0.35 s."""
    if not stack.service_urls:
        return None

    async def confirm(set_at: float, timeout: float = 15.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        pending = dict(stack.service_urls)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            while pending:
                for name, url in list(pending.items()):
                    async with session.get(f"{url}/healthz") as reply:
                        clock = (await reply.json()).get("clock")
                    if clock is None:
                        raise AssertionError(f"{name} reports no test clock: is TEST_CLOCK on?")
                    if clock["set_at"] >= set_at:
                        del pending[name]
                if pending:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{sorted(pending)} did not apply the clock setting within {timeout} s")
                    await asyncio.sleep(0.02)
    return confirm


async def events_of(stack: StackHandle, domain: str, user_id: str, *,
                    until: Callable[[list[dict[str, Any]]], Any] = bool, types: set[str] | None = None,
                    timeout: float = 30, settle_polls: int = 0) -> list[dict[str, Any]]:
    """One user's events on a domain's topic (optionally only some types), read from the
    start until `until(events)` holds. `settle_polls` more polls after that let duplicates show."""
    import json
    import uuid

    from aiokafka import AIOKafkaConsumer

    from .client import eventually

    consumer = AIOKafkaConsumer(f"{stack.topic_prefix}{domain}", bootstrap_servers=stack.kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=f"test-{uuid.uuid4().hex}")
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        async def probe() -> bool:
            batches = await consumer.getmany(timeout_ms=200)
            for messages in batches.values():
                found.extend(e for e in (json.loads(m.value) for m in messages)
                             if e["user_id"] == user_id and (types is None or e["type"] in types))
            return bool(until(found))
        await eventually(probe, timeout=timeout, what=f"events of {user_id} on {domain}")
        for _ in range(settle_polls):
            await probe()
        return found
    finally:
        await consumer.stop()


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]  # typeshed: getsockname() -> Any (its shape depends on the family)
        return port


@contextlib.asynccontextmanager
async def service_replica(stack: StackHandle, service: str, log_path: Path,
                          ready: Callable[[aiohttp.ClientSession, str], Any],
                          extra_env: dict[str, str] | None = None) -> AsyncIterator[str]:
    """Another process of one of our services on the same database and Kafka (what a scaled
    deployment runs), on a free port; yields its URL once `ready(session, url)` holds, stops it
    after. The process's output goes to `log_path`, shown if it dies before it is ready."""
    import signal
    import subprocess
    import sys

    from .client import eventually

    port = free_port()
    env = {**os.environ, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(port), "MONGO_URL": stack.mongo_url,
           "MONGO_DB": f"{stack.db_prefix}{service}", "KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
           "KAFKA_TOPIC_PREFIX": stack.topic_prefix, "GATEWAY_SECRET": stack.gateway_secret,
           "S3_ENDPOINT": stack.s3_endpoint, "S3_ACCESS_KEY": stack.s3_access_key,
           "S3_SECRET_KEY": stack.s3_secret_key, "S3_BUCKET": stack.s3_bucket,
           "TEST_CLOCK": "true", "LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", f"osmcloud_{service}"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            async def started() -> bool:
                try:
                    return bool(await ready(session, url))
                except aiohttp.ClientError:
                    if proc.poll() is not None:
                        raise RuntimeError(f"{service} replica exited: {log_path.read_text()}") from None
                    return False
            await eventually(started, timeout=60, what=f"a second {service} replica ready")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
