"""Kafka, the MongoDB-protocol server and the S3 server as containers (test mode "testcontainers").

    infra = ContainerInfra(PortLayout(28080), say=print)
    external = infra.start()      # ExternalInfra for Stack(..., external=...)
    infra.stop_kafka(); infra.start_kafka()
    infra.close()                 # removes every container it started

- testcontainers' generic ``DockerContainer``, each with a readiness wait (our own probes:
  Kafka metadata, Mongo ping, S3 /healthz) that gives up as soon as the container exits,
  naming it and showing its last log lines.
- Host network, every server listening on 127.0.0.1 only, on the ports of the local layout
  (kafka B+10/B+11, mongo B+12, S3 B+13): no traffic leaves loopback, and the services, the
  SMTP sink and nginx (local processes) find them where the local stack puts them.
- The official image where it is here or can be pulled, else our local build
  (``osmcloud_localstack.images``); the choice is printed.
- Ryuk, testcontainers' reaper, is disabled (TESTCONTAINERS_RYUK_DISABLED=true: its image cannot
  be pulled without a registry). Instead every container carries our labels; ``close`` removes
  them, and ``start`` first removes leftovers of an earlier run on the same base port.
- A watchdog follows the engine's events: a container that dies while the tests run (not through
  stop_kafka) is reported by name with its exit code and last log lines, through ``on_death``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Must be set before testcontainers is imported (it reads its configuration at import).
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

from testcontainers.core.container import DockerContainer  # noqa: E402
from testcontainers.core.waiting_utils import WaitStrategy  # noqa: E402

from . import readiness  # noqa: E402
from .images import CATALOG, ImageBuilder  # noqa: E402
from .ports import HOST, PortLayout, find_conflicts  # noqa: E402
from .stack import ExternalInfra, new_secret  # noqa: E402

LABEL_OWNER = "org.osmcloud.owner"
LABEL_RUN = "org.osmcloud.run"
LABEL_BASE_PORT = "org.osmcloud.base-port"
LABEL_ROLE = "org.osmcloud.role"
OWNER = "osmcloud-tests"

KAFKA_CLUSTER_ID = "b3NtY2xvdWQta2Fma2EtMQ"  # base64 of 16 bytes, as KRaft wants


class ContainerError(RuntimeError):
    """A container could not be started or became unusable; the message says which and why."""


@dataclass
class Death:
    role: str
    image: str
    exit_code: int | None
    oom: bool
    logs: str

    def __str__(self) -> str:
        how = "killed by the kernel (out of memory)" if self.oom else (
            "killed (SIGKILL)" if self.exit_code == 137 else f"exit code {self.exit_code}")
        return f"container {self.role} ({self.image}) died while the tests ran: {how}; its last log lines:\n{self.logs}"


@dataclass
class Choice:
    role: str
    image: str
    flavour: str  # "official" or "local"
    why: str


def _exit_code(container: Any) -> int | None:
    with contextlib.suppress(Exception):
        container.reload()
        return int(container.attrs["State"]["ExitCode"])
    return None


def _logs(container: Any, lines: int = 15) -> str:
    with contextlib.suppress(Exception):
        text = container.logs(tail=lines).decode(errors="replace").rstrip()
        return "\n".join(f"  | {line}" for line in text.splitlines()) or "  (no output)"
    return "  (logs unavailable)"


class ContainerInfra:
    ROLES = ("kafka", "mongo", "s3")
    LOCAL = {"kafka": "kafka", "mongo": "ferretdb", "s3": "versitygw"}  # role -> images.CATALOG name

    def __init__(self, ports: PortLayout, say: Callable[[str], None],
                 on_death: Callable[[Death], None] | None = None) -> None:
        self.ports = ports
        self.say = say
        self.on_death = on_death
        self.run_id = uuid.uuid4().hex[:12]
        self.containers: dict[str, Any] = {}  # role -> testcontainers DockerContainer
        self.choices: dict[str, Choice] = {}
        self._expected_down: set[str] = set()
        self._closing = False
        self._events: Any = None
        self._watchdog: threading.Thread | None = None
        self.deaths: list[Death] = []
        # the S3 container's root keys: random per run, never a published default
        self.s3_access_key, self.s3_secret_key = f"osmcloud-{new_secret()[:12]}", new_secret()

    # ---- images -------------------------------------------------------------------------------
    def choose_images(self) -> dict[str, Choice]:
        builder = ImageBuilder(log=lambda m: None)
        for role in self.ROLES:
            local = CATALOG[self.LOCAL[role]]
            assert local.official
            ok, how = builder.obtain_official(local.official)
            if ok:
                choice = Choice(role, local.official, "official", f"official image, {how}")
            elif builder.present(local.tag):
                fresh = ("" if builder.up_to_date(local.name) else
                         "; OUT OF DATE, rebuild with: python -m osmcloud_localstack.images build testcontainers")
                choice = Choice(role, local.tag, "local", f"local build; {local.official}: {how}{fresh}")
            else:
                raise ContainerError(
                    f"no image for {role}: {local.official} cannot be had ({how}) "
                    f"and the local build {local.tag} is missing; "
                    "build it with: python -m osmcloud_localstack.images build testcontainers"
                )
            self.choices[role] = choice
            self.say(f"{role}: {choice.image} - {choice.why}")
        return self.choices

    # ---- containers -----------------------------------------------------------------------------
    def _container(self, role: str) -> DockerContainer:
        choice = self.choices[role]
        p = self.ports
        labels = {LABEL_OWNER: OWNER, LABEL_RUN: self.run_id, LABEL_BASE_PORT: str(p.base), LABEL_ROLE: role}
        c = DockerContainer(choice.image)
        kwargs: dict[str, Any] = {"network_mode": "host", "labels": labels}
        if role == "kafka":
            c.with_envs(
                CLUSTER_ID=KAFKA_CLUSTER_ID,
                KAFKA_NODE_ID="1",
                KAFKA_PROCESS_ROLES="broker,controller",
                KAFKA_LISTENERS=f"PLAINTEXT://{HOST}:{p.kafka},CONTROLLER://{HOST}:{p.kafka_controller}",
                KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://{HOST}:{p.kafka}",
                KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
                KAFKA_INTER_BROKER_LISTENER_NAME="PLAINTEXT",
                KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                KAFKA_CONTROLLER_QUORUM_VOTERS=f"1@{HOST}:{p.kafka_controller}",
                KAFKA_LOG_DIRS="/tmp/kraft-combined-logs",
                KAFKA_NUM_PARTITIONS="4",
                KAFKA_AUTO_CREATE_TOPICS_ENABLE="true",
                KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
                KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS="4",
                KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
                KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
                KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
                KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR="1",
                KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR="1",
                KAFKA_HEAP_OPTS="-Xmx512m -Xms128m",
            )
        elif role == "mongo":
            if choice.flavour == "official":
                c.with_command(["--bind_ip", HOST, "--port", str(p.ferretdb)])
            else:
                c.with_command(["-listen-addr", f"{HOST}:{p.ferretdb}", "-sqlite-dir", "/data/db"])
        else:  # s3: the same command line for the official image (alpine) and ours (Debian)
            c.with_envs(ROOT_ACCESS_KEY=self.s3_access_key, ROOT_SECRET_KEY=self.s3_secret_key)
            kwargs["entrypoint"] = [
                "/bin/sh", "-c",
                "mkdir -p /tmp/vgw/data /tmp/vgw/meta && exec /app/versitygw "
                f"--port {HOST}:{p.versitygw} --health /healthz --keep-alive "
                "posix --sidecar /tmp/vgw/meta /tmp/vgw/data",
            ]
        c.with_kwargs(**kwargs)
        c.waiting_for(_ProbeWait(role, self.probe(role)))
        return c

    def probe(self, role: str) -> Callable[[], str | None]:
        p = self.ports
        return {
            "kafka": lambda: readiness.kafka(f"{HOST}:{p.kafka}"),
            "mongo": lambda: readiness.mongo(f"mongodb://{HOST}:{p.ferretdb}/"),
            "s3": lambda: readiness.http_ok(f"http://{HOST}:{p.versitygw}/healthz"),
        }[role]

    def external(self) -> ExternalInfra:
        p = self.ports
        return ExternalInfra(
            kafka_bootstrap=f"{HOST}:{p.kafka}",
            mongo_url=f"mongodb://{HOST}:{p.ferretdb}/",
            s3_endpoint=f"{HOST}:{p.versitygw}",
            s3_access_key=self.s3_access_key,
            s3_secret_key=self.s3_secret_key,
        )

    def start(self) -> ExternalInfra:
        """Start the three containers and wait until each is ready; ContainerError otherwise (nothing left running)."""
        t0 = time.monotonic()
        self.remove_leftovers()
        wanted = self.ports.for_processes(("kafka", "ferretdb", "versitygw"))
        conflicts = find_conflicts(wanted)
        if conflicts:
            raise ContainerError("ports needed by the containers are in use:\n  " + "\n  ".join(map(str, conflicts)))
        self.choose_images()
        try:
            for role in self.ROLES:
                self.containers[role] = self._container(role)
                self.say(f"starting container {role} ({self.choices[role].image}, host network, {self._where(role)})")
                t = time.monotonic()
                self.containers[role].start()
                self.say(f"{role} ready after {time.monotonic() - t:.1f} s")
            self._start_watchdog()
        except BaseException:
            self.close()
            raise
        self.say(f"containers ready in {time.monotonic() - t0:.1f} s")
        return self.external()

    def _where(self, role: str) -> str:
        p = self.ports
        return {"kafka": f"{HOST}:{p.kafka}", "mongo": f"{HOST}:{p.ferretdb}", "s3": f"{HOST}:{p.versitygw}"}[role]

    def stop_kafka(self) -> None:
        self._expected_down.add("kafka")
        self.containers["kafka"].get_wrapped_container().stop(timeout=20)

    def start_kafka(self) -> None:
        wrapped = self.containers["kafka"].get_wrapped_container()
        try:
            wrapped.start()
            wait = _ProbeWait("kafka", self.probe("kafka")).with_startup_timeout(120)
            wait.wait_until_ready(self.containers["kafka"])
        except ContainerError:
            # Kafka stays down: every later test would fail on it, so stop the run like a death.
            self._died("kafka", wrapped, None)
            raise
        finally:
            self._expected_down.discard("kafka")

    def close(self) -> None:
        """Remove every container of this run (also after a failed start)."""
        self._closing = True
        if self._events is not None:
            with contextlib.suppress(Exception):
                self._events.close()
        for role in reversed(list(self.containers)):
            with contextlib.suppress(Exception):
                self.containers[role].stop()  # testcontainers: remove(force=True, v=True)
        self.containers.clear()
        self.remove_leftovers(run_only=True)

    def remove_leftovers(self, run_only: bool = False) -> int:
        """Remove containers of ours on this base port (of this run only, or of any earlier run)."""
        import docker

        label = f"{LABEL_RUN}={self.run_id}" if run_only else f"{LABEL_BASE_PORT}={self.ports.base}"
        client = docker.from_env(timeout=30)
        try:
            found = client.containers.list(all=True, filters={"label": [f"{LABEL_OWNER}={OWNER}", label]})
            for c in found:
                with contextlib.suppress(Exception):
                    c.remove(force=True, v=True)
            if found and not run_only:
                self.say(f"removed {len(found)} container(s) left by an earlier run on base port {self.ports.base}")
            return len(found)
        finally:
            client.close()

    # ---- watchdog -------------------------------------------------------------------------------
    def _start_watchdog(self) -> None:
        import docker

        client = docker.from_env(timeout=None)
        self._events = client.events(decode=True,
                                     filters={"label": f"{LABEL_RUN}={self.run_id}", "event": ["die", "oom"]})
        self._watchdog = threading.Thread(target=self._watch, args=(client,), name="container-watchdog", daemon=True)
        self._watchdog.start()

    def _died(self, role: str, wrapped: Any, exit_code: int | None, oom: bool = False) -> None:
        death = Death(role, self.choices[role].image if role in self.choices else "?",
                      exit_code if exit_code is not None or wrapped is None else _exit_code(wrapped), oom,
                      _logs(wrapped) if wrapped is not None else "  (logs unavailable)")
        self.deaths.append(death)
        self.say(str(death))
        if self.on_death is not None:
            self.on_death(death)

    def _watch(self, client: Any) -> None:
        oom: set[str] = set()
        try:
            for event in self._events:
                attrs = event.get("Actor", {}).get("Attributes", {})
                role = attrs.get(LABEL_ROLE, "?")
                if event.get("status") == "oom" or event.get("Action") == "oom":
                    oom.add(role)
                    continue
                if self._closing or role in self._expected_down:
                    continue
                code = attrs.get("exitCode")
                container = self.containers.get(role)
                self._died(role, container.get_wrapped_container() if container is not None else None,
                           int(code) if code is not None else None, oom=role in oom)
        except Exception:  # noqa: BLE001 - the stream ends when close() closes it
            pass
        finally:
            with contextlib.suppress(Exception):
                client.close()


class _ProbeWait(WaitStrategy):
    """Readiness wait: our probe answers None (ready); stops at once when the container exits."""

    def __init__(self, role: str, probe: Callable[[], str | None]) -> None:
        super().__init__()
        self.role = role
        self.probe = probe
        self._startup_timeout = 180.0

    def wait_until_ready(self, container: Any) -> None:
        deadline = time.monotonic() + self._startup_timeout
        reason: str | None = "not checked yet"
        wrapped = container.get_wrapped_container()
        while True:
            wrapped.reload()
            if wrapped.status in ("exited", "dead"):
                raise ContainerError(
                    f"container {self.role} ({container.image}) exited during startup with code {_exit_code(wrapped)}; "
                    f"its last log lines:\n{_logs(wrapped)}"
                )
            reason = self.probe()
            if reason is None:
                return
            if time.monotonic() > deadline:
                raise ContainerError(
                    f"container {self.role} ({container.image}) not ready within {self._startup_timeout:.0f} s "
                    f"({reason}); its last log lines:\n{_logs(wrapped)}"
                )
            time.sleep(0.5)
