"""The whole osmcloud system as local processes, under one state directory.

    from osmcloud_localstack import Stack, StackConfig
    stack = Stack(StackConfig(state_dir=Path(".state/test"), base_port=28080, test_clock=True))
    stack.up()                 # infra, then the four services, then the nginx gateway; waits for each
    stack.endpoints()          # URLs, credentials and ports (Endpoints)
    stack.stop_process("kafka"); stack.start_process("kafka")
    stack.down()

Layout of the state directory (everything the stack writes):
    stack.json        how the stack was started (ports, secret, external endpoints)
    run/<name>.pid    one PID file per process        logs/<name>.log   its output
    kafka/            server.properties, cluster id, data    ferretdb/   SQLite files
    s3data/           versitygw's objects, their metadata in xattrs  mail/       the SMTP sink's mails
    s3meta-sidecar/   versitygw's metadata where the filesystem has no user xattrs
    nginx/            nginx.conf, the rendered template, temp files

Nothing is installed here: ``bash infra/bootstrap.sh`` must have run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import monitoring, paths, readiness
from .gateway import write_gateway_config
from .ports import HOST, PROCESS_PORTS, PortLayout, find_conflicts
from .procs import PidRecord, ProcessManager, group_members, proc_state, tail
from .supervisor import SUPERVISOR, BackoffPolicy, held_marker, read_status, start_request, status_path

SERVICES = ("auth", "files", "trash", "billing")
# secrets a stack generates once and keeps in its stack.json
GENERATED_SECRETS = ("s3_access_key", "s3_secret_key", "sandbox_receipt_key", "operator_token")
INFRA = ("kafka", "ferretdb", "versitygw")
# start order; stop runs in reverse (the supervisor, which restarts the others, stops first)
ALL_PROCESSES = ("kafka", "ferretdb", "versitygw", "smtp-sink", *SERVICES, "gateway", "prometheus", SUPERVISOR)



def new_secret() -> str:
    """A strong random value for one of a stack's secrets (kept in its stack.json, mode 0600)."""
    return secrets.token_urlsafe(32)


def supports_user_xattrs(directory: Path) -> bool:
    """Whether files in `directory` can carry user extended attributes (ext4, xfs, btrfs
    and tmpfs can; some overlay and network filesystems cannot)."""
    probe = directory / f".xattr-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.touch()
        os.setxattr(probe, "user.osmcloud.probe", b"1")
        return os.getxattr(probe, "user.osmcloud.probe") == b"1"
    except OSError:
        return False
    finally:
        probe.unlink(missing_ok=True)


def versitygw_metadata_args(data: Path, sidecar: Path) -> list[str]:
    """Where versitygw keeps object metadata (ETag, content type, ...): in the objects'
    extended attributes where the filesystem has them, else in a sidecar tree of one
    directory and a few files per object. Deleting an object then costs one unlink instead
    of removing that directory and scanning its parents (two thirds of versitygw's CPU in
    the purge benchmark). A state directory that already has a sidecar tree keeps it: the
    metadata of its objects lives there."""
    if (sidecar.is_dir() and any(sidecar.iterdir())) or not supports_user_xattrs(data):
        sidecar.mkdir(parents=True, exist_ok=True)
        return ["--sidecar", str(sidecar)]
    return []


class StackError(RuntimeError):
    """A stack operation failed; the message says what and how to go on."""


@dataclass
class ExternalInfra:
    """Kafka, Mongo and S3 run elsewhere (testcontainers, a server); we start only the rest."""

    kafka_bootstrap: str
    mongo_url: str
    s3_endpoint: str
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_secure: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ExternalInfra | None:
        """OSMCLOUD_EXTERNAL_KAFKA / OSMCLOUD_EXTERNAL_MONGO_URL / OSMCLOUD_EXTERNAL_S3_ENDPOINT (all three),
        with OSMCLOUD_EXTERNAL_S3_ACCESS_KEY / _SECRET_KEY (no defaults: the S3 server's own keys)."""
        env = dict(os.environ if env is None else env)
        k, m, s = (env.get(n, "") for n in ("OSMCLOUD_EXTERNAL_KAFKA", "OSMCLOUD_EXTERNAL_MONGO_URL",
                                            "OSMCLOUD_EXTERNAL_S3_ENDPOINT"))
        if not (k or m or s):
            return None
        if not (k and m and s):
            raise StackError("set all of OSMCLOUD_EXTERNAL_KAFKA, OSMCLOUD_EXTERNAL_MONGO_URL and "
                             "OSMCLOUD_EXTERNAL_S3_ENDPOINT, or none")
        return cls(
            kafka_bootstrap=k,
            mongo_url=m,
            s3_endpoint=s,
            s3_access_key=env.get("OSMCLOUD_EXTERNAL_S3_ACCESS_KEY", ""),
            s3_secret_key=env.get("OSMCLOUD_EXTERNAL_S3_SECRET_KEY", ""),
            s3_secure=env.get("OSMCLOUD_EXTERNAL_S3_SECURE", "false").lower() in ("1", "true", "yes"),
        )


@dataclass
class StackConfig:
    state_dir: Path
    base_port: int = 8080
    test_clock: bool = False
    services: bool = True  # False: infra + smtp sink + gateway only
    external: ExternalInfra | dict[str, Any] | None = None
    topic_prefix: str = "osmcloud."
    db_prefix: str = "osmcloud_"  # MONGO_DB = <db_prefix><service>
    s3_bucket: str = "osmcloud-blobs"
    log_level: str = "info"
    gateway_secret: str | None = None  # None: random per stack (kept in stack.json)
    # billing's sandbox store (signed test receipts): on for the test stack, off for `make up`
    sandbox_store: bool = False
    # the admin API with a random operator token (kept in stack.json): on for the test stack
    admin_api: bool = False
    # address ranges of proxies in front of the gateway whose X-Forwarded-For is believed
    trusted_proxies: tuple[str, ...] = ()
    kafka_heap: str = "512m"
    timeouts: dict[str, float] = field(default_factory=dict)  # per process readiness timeout override
    prometheus: bool = False  # also run Prometheus (deploy/prometheus/alerts.yml) scraping the stack
    # a supervisor process starts everything and restarts what dies (supervisor.py); False:
    # the caller starts the processes itself and nothing restarts them
    supervise: bool = True
    restart_backoff: BackoffPolicy | dict[str, float] = field(default_factory=BackoffPolicy)
    # more environment for every service process (the chaos command's OPERATION_TTL_SECONDS)
    service_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).absolute()
        if isinstance(self.external, dict):
            self.external = ExternalInfra(**self.external)
        if isinstance(self.restart_backoff, dict):
            self.restart_backoff = BackoffPolicy(**self.restart_backoff)
        PortLayout(self.base_port)  # validates


@dataclass
class Endpoints:
    gateway_url: str
    mongo_url: str
    kafka_bootstrap: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    s3_bucket: str
    s3_secure: bool
    smtp_host: str
    smtp_port: int
    smtp_sink_url: str
    gateway_secret: str
    topic_prefix: str
    db_prefix: str
    test_clock: bool
    sandbox_receipt_key: str  # "" when the sandbox store is off
    state_dir: str
    service_urls: dict[str, str]
    operator_token: str = ""  # the admin API's operator token; "" when it is off

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def as_env(self) -> dict[str, str]:
        """The OSMCLOUD_* variables that make tests use this running system (conftest mode "env")."""
        return {
            "OSMCLOUD_GATEWAY_URL": self.gateway_url,
            "OSMCLOUD_MONGO_URL": self.mongo_url,
            "OSMCLOUD_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "OSMCLOUD_S3_ENDPOINT": self.s3_endpoint,
            "OSMCLOUD_S3_ACCESS_KEY": self.s3_access_key,
            "OSMCLOUD_S3_SECRET_KEY": self.s3_secret_key,
            "OSMCLOUD_S3_BUCKET": self.s3_bucket,
            "OSMCLOUD_S3_SECURE": "true" if self.s3_secure else "false",
            "OSMCLOUD_SMTP_HOST": self.smtp_host,
            "OSMCLOUD_SMTP_PORT": str(self.smtp_port),
            "OSMCLOUD_SMTP_SINK_URL": self.smtp_sink_url,
            "OSMCLOUD_GATEWAY_SECRET": self.gateway_secret,
            "OSMCLOUD_TOPIC_PREFIX": self.topic_prefix,
            "OSMCLOUD_DB_PREFIX": self.db_prefix,
            "OSMCLOUD_TEST_CLOCK": "true" if self.test_clock else "false",
            "OSMCLOUD_SANDBOX_RECEIPT_KEY": self.sandbox_receipt_key,
            "OSMCLOUD_OPERATOR_TOKEN": self.operator_token,
            "OSMCLOUD_SERVICE_URLS": ",".join(f"{k}={v}" for k, v in sorted(self.service_urls.items())),
        }


@dataclass
class _Spec:
    argv: list[str]
    env: dict[str, str]
    match: str
    ready: Callable[[], str | None]
    timeout: float
    cwd: Path | None = None


DEFAULT_TIMEOUTS = {
    "kafka": 120.0,
    "ferretdb": 60.0,
    "versitygw": 60.0,
    "smtp-sink": 30.0,
    "auth": 90.0,
    "files": 90.0,
    "trash": 90.0,
    "billing": 90.0,
    "gateway": 30.0,
}
STOP_TIMEOUTS = {"kafka": 40.0}


class Stack:
    def __init__(self, config: StackConfig, log: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.repo = paths.repo_root()
        self.state = config.state_dir
        self.ports = PortLayout(config.base_port)
        self.procs = ProcessManager(self.state / "run", self.state / "logs")
        self._log = log or (lambda msg: None)
        self._secret: str | None = config.gateway_secret
        # S3 keys of the local versitygw and the sandbox store's key: random per state directory
        self._generated: dict[str, str] = {}

    # ---- construction from a state directory ---------------------------------------------
    @classmethod
    def from_state_dir(cls, state_dir: Path, log: Callable[[str], None] | None = None) -> Stack:
        """The stack recorded in state_dir/stack.json (for down/status from another process)."""
        state_dir = Path(state_dir).absolute()
        meta = cls._read_meta(state_dir)
        if meta is None:
            return cls(StackConfig(state_dir=state_dir), log)
        cfg = StackConfig(
            state_dir=state_dir,
            base_port=meta["base_port"],
            test_clock=meta["test_clock"],
            services=meta["services"],
            external=meta.get("external"),
            topic_prefix=meta["topic_prefix"],
            db_prefix=meta["db_prefix"],
            s3_bucket=meta["s3_bucket"],
            log_level=meta["log_level"],
            gateway_secret=meta["gateway_secret"],
            sandbox_store=meta.get("sandbox_store", False),
            admin_api=meta.get("admin_api", False),
            trusted_proxies=tuple(meta.get("trusted_proxies") or ()),
            prometheus=meta.get("prometheus", False),
            supervise=meta.get("supervise", False),
            restart_backoff=meta.get("restart_backoff") or BackoffPolicy(),
            kafka_heap=meta.get("kafka_heap", "512m"),
            timeouts=dict(meta.get("timeouts") or {}),
            service_env=dict(meta.get("service_env") or {}),
        )
        stack = cls(cfg, log)
        stack._generated = dict(meta.get("secrets") or {})
        return stack

    @staticmethod
    def _read_meta(state_dir: Path) -> dict[str, Any] | None:
        try:
            meta: dict[str, Any] = json.loads((state_dir / "stack.json").read_text())
            return meta
        except (OSError, ValueError):
            return None

    def _write_meta(self) -> None:
        c = self.config
        meta = {
            "base_port": c.base_port,
            "test_clock": c.test_clock,
            "services": c.services,
            "external": asdict(c.external) if isinstance(c.external, ExternalInfra) else None,
            "topic_prefix": c.topic_prefix,
            "db_prefix": c.db_prefix,
            "s3_bucket": c.s3_bucket,
            "log_level": c.log_level,
            "gateway_secret": self.gateway_secret,
            "sandbox_store": c.sandbox_store,
            "admin_api": c.admin_api,
            "trusted_proxies": list(c.trusted_proxies),
            "secrets": {name: self._generated_secret(name) for name in GENERATED_SECRETS},
            "prometheus": c.prometheus,
            "supervise": c.supervise,
            "restart_backoff": asdict(self.backoff),
            "kafka_heap": c.kafka_heap,
            "timeouts": dict(c.timeouts),
            "service_env": c.service_env,
            "processes": list(self.process_names()),
            "repo": str(self.repo),
        }
        self.state.mkdir(parents=True, exist_ok=True)
        path = self.state / "stack.json"
        path.write_text(json.dumps(meta, indent=1))
        os.chmod(path, 0o600)

    # ---- what runs ---------------------------------------------------------------------------
    @property
    def backoff(self) -> BackoffPolicy:
        b = self.config.restart_backoff
        return b if isinstance(b, BackoffPolicy) else BackoffPolicy(**b)

    @property
    def external(self) -> ExternalInfra | None:
        ext = self.config.external
        return ext if isinstance(ext, ExternalInfra) else None

    @property
    def gateway_secret(self) -> str:
        if self._secret is None:
            self._secret = secrets.token_urlsafe(24)
        return self._secret

    def _generated_secret(self, name: str) -> str:
        if name not in self._generated:
            self._generated[name] = new_secret()
        return self._generated[name]

    @property
    def s3_keys(self) -> tuple[str, str]:
        """(access key, secret key): the external S3 server's, else our versitygw's (random)."""
        ext = self.external
        if ext:
            return ext.s3_access_key, ext.s3_secret_key
        return f"osmcloud-{self._generated_secret('s3_access_key')[:12]}", self._generated_secret("s3_secret_key")

    @property
    def sandbox_receipt_key(self) -> str:
        return self._generated_secret("sandbox_receipt_key") if self.config.sandbox_store else ""

    @property
    def operator_token(self) -> str:
        return self._generated_secret("operator_token") if self.config.admin_api else ""

    def process_names(self) -> tuple[str, ...]:
        names: list[str] = []
        if self.external is None:
            names += INFRA
        names.append("smtp-sink")
        if self.config.services:
            names += SERVICES
        names.append("gateway")
        if self.config.prometheus:
            names.append("prometheus")
        return tuple(names)

    def endpoints(self) -> Endpoints:
        c, p, ext = self.config, self.ports, self.external
        return Endpoints(
            gateway_url=f"http://{HOST}:{p.gateway}",
            mongo_url=ext.mongo_url if ext else f"mongodb://{HOST}:{p.ferretdb}/",
            kafka_bootstrap=ext.kafka_bootstrap if ext else f"{HOST}:{p.kafka}",
            s3_endpoint=ext.s3_endpoint if ext else f"{HOST}:{p.versitygw}",
            s3_access_key=self.s3_keys[0],
            s3_secret_key=self.s3_keys[1],
            s3_bucket=c.s3_bucket,
            s3_secure=ext.s3_secure if ext else False,
            smtp_host=HOST,
            smtp_port=p.smtp,
            smtp_sink_url=f"http://{HOST}:{p.smtp_http}",
            gateway_secret=self.gateway_secret,
            topic_prefix=c.topic_prefix,
            db_prefix=c.db_prefix,
            test_clock=c.test_clock,
            sandbox_receipt_key=self.sandbox_receipt_key,
            state_dir=str(self.state),
            service_urls={name: f"http://{HOST}:{p.port(name)}" for name in SERVICES},
            operator_token=self.operator_token,
        )

    # ---- up / down -----------------------------------------------------------------------------
    def up(self) -> Endpoints:
        """Start everything and wait until it is ready; on failure stop what was started and raise
        StackError. With `supervise` (the default) a supervisor process does the starting and
        then restarts whatever dies (supervisor.py); this call follows its log."""
        t0 = time.monotonic()
        self._check_state_dir()
        running = [n for n in (*self.process_names(), SUPERVISOR) if self.procs.running(n)]
        if running:
            raise StackError(
                f"processes of a stack in {self.state} are already running ({', '.join(running)}); "
                f"stop them first: osmcloud-stack down --state-dir {self.state}"
            )
        self._check_tools()
        self._check_ports(self.process_names())
        for name in self.process_names():  # a new start forgets earlier stops on purpose
            held_marker(self.procs.run_dir, name).unlink(missing_ok=True)
            start_request(self.procs.run_dir, name).unlink(missing_ok=True)
        status_path(self.state).unlink(missing_ok=True)
        self._write_meta()
        if self.config.supervise:
            self._start_supervised()
        else:
            self.start_all()
        self._log(f"stack ready in {time.monotonic() - t0:.1f} s: gateway {self.endpoints().gateway_url}")
        return self.endpoints()

    def start_all(self) -> None:
        """Start every process in order, waiting for each to be ready (run by the supervisor,
        or by up() itself without one); on failure stop what was started and raise."""
        try:
            first = [n for n in ("ferretdb", "versitygw", "smtp-sink") if n in self.process_names()]
            if self.external:
                ext = self.external
                self._log(f"using external Kafka {ext.kafka_bootstrap}, Mongo {ext.mongo_url}, S3 {ext.s3_endpoint}")
                self._wait_external()
            started = [self._spawn(n) for n in first]
            if "kafka" in self.process_names():
                self._format_kafka()
                started.insert(0, self._spawn("kafka"))
            for name, rec, spec in started:
                self._wait_ready(name, rec, spec)
            if self.config.services:
                started = [self._spawn(n) for n in SERVICES]
                for name, rec, spec in started:
                    self._wait_ready(name, rec, spec)
            name, rec, spec = self._spawn("gateway")
            self._wait_ready(name, rec, spec)
            if self.config.prometheus:
                name, rec, spec = self._spawn("prometheus")
                self._wait_ready(name, rec, spec)
        except BaseException:
            self._log("start failed; stopping what was started")
            self._stop_all(supervisor=False)
            raise

    def _start_supervised(self) -> None:
        """Start the supervisor, which starts the stack; forward its log lines until it reports
        that everything runs, or raise StackError with what it reports (or its last lines)."""
        log = self.procs.log_path(SUPERVISOR)
        offset = log.stat().st_size if log.exists() else 0
        argv = [paths.venv_python(self.repo), "-m", "osmcloud_localstack.supervise", "--state-dir", str(self.state)]
        rec = self.procs.start(SUPERVISOR, argv, env={"PYTHONUNBUFFERED": "1"}, cwd=self.state,
                               match=f"osmcloud_localstack.supervise --state-dir {self.state}")
        self._log(f"supervisor started (pid {rec.pid}); it starts the stack and restarts what dies")

        def forward() -> None:
            nonlocal offset
            try:
                with open(log, "rb") as f:
                    f.seek(offset)
                    data = f.read()
            except OSError:
                return
            end = data.rfind(b"\n") + 1
            offset += end
            for line in data[:end].decode(errors="replace").splitlines():
                if line and not line.startswith("=== "):
                    self._log(line)

        try:
            while True:
                forward()
                status = read_status(self.state) or {}
                if status.get("phase") == "running":
                    return
                if status.get("phase") == "failed":
                    raise StackError(status.get("error") or f"the start failed; see {log}")
                if not self.procs.running(SUPERVISOR):
                    forward()
                    raise StackError(
                        f"the supervisor exited while starting the stack; last lines of {log}:\n{tail(log)}")
                time.sleep(0.1)
        except BaseException:
            self.down()
            raise

    def down(self) -> dict[str, str]:
        """Stop every process recorded in the state directory: the supervisor first (so that
        nothing is restarted), then the others in reverse start order."""
        return self._stop_all(supervisor=True)

    def _stop_all(self, supervisor: bool) -> dict[str, str]:
        results = {}
        if supervisor and self.procs.read(SUPERVISOR) is not None:
            results[SUPERVISOR] = self.procs.stop(SUPERVISOR, timeout=STOP_TIMEOUTS.get(SUPERVISOR, 15.0),
                                                  on_kill=self._log)
            self._log(f"{SUPERVISOR}: {results[SUPERVISOR]}")
        names = [n for n in self.procs.recorded_names() if n != SUPERVISOR]
        order = [n for n in reversed(ALL_PROCESSES) if n in names] + [n for n in names if n not in ALL_PROCESSES]
        for name in order:
            results[name] = self.procs.stop(name, timeout=STOP_TIMEOUTS.get(name, 15.0), on_kill=self._log)
            self._log(f"{name}: {results[name]}")
        return results

    # ---- one process -----------------------------------------------------------------------
    def supervised(self) -> bool:
        """Whether a supervisor watches this stack's processes right now."""
        status = read_status(self.state)
        return bool(self.procs.running(SUPERVISOR)) and status is not None and status.get("phase") == "running"

    def stop_process(self, name: str) -> str:
        """Stop one process on purpose: the supervisor holds it (no restart) until
        start_process(name)."""
        self._known(name)
        held_marker(self.procs.run_dir, name).write_text(f"{time.time()}\n")
        if self.supervised():
            self._wait_supervisor(lambda s: s.get("state") == "held", name, "take note of the hold")
        result = self.procs.stop(name, timeout=STOP_TIMEOUTS.get(name, 15.0), on_kill=self._log)
        self._log(f"{name}: {result}")
        return result

    def start_process(self, name: str, env: dict[str, str] | None = None) -> None:
        """(Re)start one process of this stack and wait until it is ready. With a supervisor,
        it starts the process (now, whatever its backoff) and keeps `env` (extra environment)
        for later restarts too. Works after stop_process and after a crash."""
        self._known(name)
        if self.procs.running(name):
            raise StackError(f"{name} is already running")
        spec = self._spec(name)
        if not self.supervised():
            held_marker(self.procs.run_dir, name).unlink(missing_ok=True)
            self._wait_ready(name, self.spawn(name, env), spec)
            return
        request = start_request(self.procs.run_dir, name)
        tmp = request.with_suffix(".tmp")
        tmp.write_text(json.dumps({"env": env or {}}))
        tmp.replace(request)
        self._wait_supervisor(lambda s: not request.exists(), name, "take the start request")
        self.wait_ready(name, spec.timeout)

    def wait_ready(self, name: str, timeout: float | None = None) -> None:
        """Wait until `name` runs and answers its readiness probe (StackError after `timeout`
        seconds, default that process's start timeout): after a restart by the supervisor."""
        self._known(name)
        timeout = timeout if timeout is not None else self.config.timeouts.get(name, DEFAULT_TIMEOUTS.get(name, 60.0))
        probe = self._ready(name)
        t0 = time.monotonic()
        reason: str | None = "not running"
        while time.monotonic() - t0 < timeout:
            if self.procs.running(name):
                reason = probe()
                if reason is None:
                    self._log(f"{name} ready after {time.monotonic() - t0:.1f} s")
                    return
            else:
                reason = "not running"
            time.sleep(0.1)
        log = self.procs.log_path(name)
        raise StackError(f"{name} not ready within {timeout:.0f} s ({reason}); last lines of {log}:\n{tail(log)}")

    def _wait_supervisor(self, done: Callable[[dict[str, Any]], bool], name: str, what: str,
                         timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            status = read_status(self.state) or {}
            if done((status.get("processes") or {}).get(name) or {}):
                return
            if time.monotonic() > deadline:
                raise StackError(f"the supervisor did not {what} of {name} within {timeout:.0f} s; "
                                 f"see {self.procs.log_path(SUPERVISOR)}")
            time.sleep(0.05)

    def spawn(self, name: str, env: dict[str, str] | None = None) -> PidRecord:
        """Start one process without waiting (the supervisor's restart): its ports must be free."""
        self._known(name)
        self._check_ports((name,))
        if name == "kafka":
            self._format_kafka()
        return self._spawn(name, env)[1]

    def process_info(self) -> dict[str, dict[str, Any]]:
        """Per process what the supervisor saw: state (running, waiting to restart, held),
        pid, restarts, last_exit ('code 1', 'signal 9 (SIGKILL)'), last_exit_at,
        next_restart_at; {} without a supervisor status."""
        return dict((read_status(self.state) or {}).get("processes") or {})

    def status(self) -> list[dict[str, Any]]:
        rows = []
        info = self.process_info()
        for name in self.process_names():
            rec = self.procs.read(name)
            running = self.procs.running(name)
            ports = [self.ports.port(r) for r in PROCESS_PORTS[name]]
            seen = info.get(name, {})
            if running:
                reason = self._ready(name)()
                state = "ready" if reason is None else f"running, not ready ({reason})"
            elif held_marker(self.procs.run_dir, name).exists():
                state = "stopped on purpose (held: not restarted)"
            elif seen.get("state") == "waiting" and self.supervised():
                state = f"dead, restart due in {max(0.0, (seen.get('next_restart_at') or 0) - time.time()):.1f} s"
            elif rec:
                left = group_members(rec) if proc_state(rec.pid) in (None, "Z", "X") else []
                state = f"dead, {len(left)} child process(es) left (run down)" if left else "dead (stale PID file)"
            else:
                state = "stopped"
            rows.append({"name": name, "pid": running.pid if running else None, "ports": ports, "state": state,
                         "restarts": seen.get("restarts", 0), "last_exit": seen.get("last_exit", ""),
                         "last_exit_at": seen.get("last_exit_at")})
        if self.config.supervise or self.procs.read(SUPERVISOR):
            sup = self.procs.running(SUPERVISOR)
            phase = (read_status(self.state) or {}).get("phase", "")
            state = ("ready" if phase == "running" else f"running ({phase or 'no status yet'})") if sup else "stopped"
            rows.append({"name": SUPERVISOR, "pid": sup.pid if sup else None, "ports": [], "state": state,
                         "restarts": 0, "last_exit": "", "last_exit_at": None})
        return rows

    # ---- internals -------------------------------------------------------------------------
    def _known(self, name: str) -> None:
        if name not in self.process_names():
            if self.external and name in INFRA:
                raise StackError(f"{name} is external to this stack; it cannot be stopped or started from here")
            raise StackError(f"unknown process {name!r}; this stack has {', '.join(self.process_names())}")

    def _check_state_dir(self) -> None:
        meta = self._read_meta(self.state)
        kafka_formatted = (self.state / "kafka" / "data" / "meta.properties").exists()
        if meta and meta.get("base_port") != self.config.base_port and kafka_formatted:
            raise StackError(
                f"{self.state} was created for base port {meta.get('base_port')} (Kafka's metadata names its ports); "
                f"use --base-port {meta.get('base_port')} or remove that directory"
            )
        if meta and meta.get("gateway_secret") and self.config.gateway_secret is None:
            self._secret = meta["gateway_secret"]
        if meta and meta.get("secrets"):  # versitygw's data was written with these keys
            self._generated = {**meta["secrets"], **self._generated}

    def _check_tools(self) -> None:
        names = self.process_names()
        try:
            paths.venv_python(self.repo)
            if "kafka" in names:
                paths.java_binary()
                paths.kafka_lib_dir()
            if "ferretdb" in names:
                paths.ferretdb_binary(self.repo)
            if "versitygw" in names:
                paths.versitygw_binary()
            paths.nginx_binary()
            if "prometheus" in names:
                paths.prometheus_binary()
        except paths.ToolMissing as exc:
            raise StackError(str(exc)) from exc
        if self.config.services:
            missing = [s for s in SERVICES if not paths.service_available(self.repo, s)]
            if missing:
                raise StackError(
                    f"service package(s) not found: {', '.join('services/' + m for m in missing)} "
                    "(no src/osmcloud_<name>/__main__.py); start with --infra-only to run without services"
                )

    def _check_ports(self, names: tuple[str, ...] | list[str]) -> None:
        conflicts = find_conflicts(self.ports.for_processes(tuple(names)))
        if conflicts:
            lines = "\n  ".join(str(c) for c in conflicts)
            raise StackError(
                f"cannot start: {len(conflicts)} port(s) in use (base port {self.config.base_port}):\n  {lines}\n"
                "stop whatever holds them (osmcloud-stack down --state-dir <dir> for an old stack) "
                "or choose another --base-port"
            )

    def _spawn(self, name: str, env: dict[str, str] | None = None) -> tuple[str, PidRecord, _Spec]:
        spec = self._spec(name)
        self._log(f"starting {name} ({', '.join(f'{HOST}:{self.ports.port(r)}' for r in PROCESS_PORTS[name])})")
        rec = self.procs.start(name, spec.argv, env={**spec.env, **(env or {})}, cwd=spec.cwd, match=spec.match)
        return name, rec, spec

    def _wait_ready(self, name: str, rec: PidRecord, spec: _Spec) -> None:
        t0 = time.monotonic()
        deadline = t0 + spec.timeout
        reason: str | None = "not checked yet"
        while True:
            code = self.procs.exit_code(rec)
            if code is not None or not self.procs.running(name):
                raise StackError(
                    f"{name} exited during startup{'' if code is None else f' with code {code}'}; "
                    f"last lines of {rec.log}:\n{tail(rec.log)}"
                )
            reason = spec.ready()
            if reason is None:
                self._log(f"{name} ready after {time.monotonic() - t0:.1f} s")
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"{name} not ready within {spec.timeout:.0f} s ({reason}); "
                    f"last lines of {rec.log}:\n{tail(rec.log)}"
                )
            time.sleep(0.25)

    def _wait_external(self) -> None:
        ext = self.external
        assert ext is not None
        checks: dict[str, Callable[[], str | None]] = {
            "kafka": lambda: readiness.kafka(ext.kafka_bootstrap),
            "mongo": lambda: readiness.mongo(ext.mongo_url),
            "s3": lambda: readiness.http_answers(f"{'https' if ext.s3_secure else 'http'}://{ext.s3_endpoint}/"),
        }
        for what, check in checks.items():
            deadline = time.monotonic() + 120
            while (reason := check()) is not None:
                if time.monotonic() > deadline:
                    raise StackError(f"external {what} not reachable within 120 s: {reason}")
                time.sleep(0.5)

    # ---- process definitions -----------------------------------------------------------------
    def _ready(self, name: str) -> Callable[[], str | None]:
        """The readiness probe of a process: returns None when ready, else why not."""
        p = self.ports
        probes: dict[str, Callable[[], str | None]] = {
            "kafka": lambda: readiness.kafka(f"{HOST}:{p.kafka}"),
            "ferretdb": lambda: readiness.mongo(f"mongodb://{HOST}:{p.ferretdb}/"),
            "versitygw": lambda: readiness.http_ok(f"http://{HOST}:{p.versitygw}/healthz"),
            "smtp-sink": lambda: (readiness.http_ok(f"http://{HOST}:{p.smtp_http}/healthz")
                                  or readiness.tcp(HOST, p.smtp)),
            "gateway": lambda: readiness.http_ok(f"http://{HOST}:{p.gateway}/healthz"),
            "prometheus": lambda: readiness.http_ok(f"http://{HOST}:{p.port('prometheus')}/-/ready"),
        }
        for s in SERVICES:
            probes[s] = (lambda port: lambda: readiness.http_ok(f"http://{HOST}:{port}/readyz"))(p.port(s))
        return probes[name]

    def _spec(self, name: str) -> _Spec:
        p = self.ports
        timeout = self.config.timeouts.get(name, DEFAULT_TIMEOUTS.get(name, 60.0))
        if name == "kafka":
            props = self._kafka_properties()
            return _Spec(
                argv=self._kafka_java_argv("kafka.Kafka", str(props)),
                env={},
                match=str(props),
                ready=self._ready(name),
                timeout=timeout,
                cwd=self.state / "kafka",
            )
        if name == "ferretdb":
            data = self.state / "ferretdb"
            data.mkdir(parents=True, exist_ok=True)
            return _Spec(
                argv=[str(paths.ferretdb_binary(self.repo)), "-listen-addr", f"{HOST}:{p.ferretdb}",
                      "-sqlite-dir", str(data)],
                env={},
                match=str(data),
                ready=self._ready(name),
                timeout=timeout,
                cwd=data,
            )
        if name == "versitygw":
            # neither directory name may be a prefix of the other (versitygw refuses s3 + s3meta)
            data, meta = self.state / "s3data", self.state / "s3meta-sidecar"
            data.mkdir(parents=True, exist_ok=True)
            return _Spec(
                argv=[
                    str(paths.versitygw_binary()),
                    "--port", f"{HOST}:{p.versitygw}",
                    "--health", "/healthz",
                    "--keep-alive",
                    "posix",
                    *versitygw_metadata_args(data, meta),
                    str(data),
                ],
                env={"ROOT_ACCESS_KEY": self.s3_keys[0], "ROOT_SECRET_KEY": self.s3_keys[1]},
                match=str(data),
                ready=self._ready(name),
                timeout=timeout,
                cwd=self.state,
            )
        if name == "smtp-sink":
            mail = self.state / "mail"
            return _Spec(
                argv=[
                    paths.venv_python(self.repo), "-m", "osmcloud_localstack.smtp_sink",
                    "--host", HOST, "--smtp-port", str(p.smtp), "--http-port", str(p.smtp_http),
                    "--mail-dir", str(mail),
                ],
                env={"PYTHONUNBUFFERED": "1"},
                match=str(mail),
                ready=self._ready(name),
                timeout=timeout,
                cwd=self.state,
            )
        if name in SERVICES:
            return _Spec(
                argv=[paths.venv_python(self.repo), "-m", f"osmcloud_{name}"],
                env=self.service_env(name),
                match=f"-m osmcloud_{name}",
                ready=self._ready(name),
                timeout=timeout,
                cwd=self.state,
            )
        if name == "gateway":
            prefix = self.state / "nginx"
            conf = write_gateway_config(
                repo=self.repo,
                prefix=prefix,
                logs=self.state / "logs",
                listen=f"{HOST}:{p.gateway}",
                upstreams={**{s: f"{HOST}:{p.port(s)}" for s in SERVICES}, "s3": self.endpoints().s3_endpoint},
                gateway_secret=self.gateway_secret,
                trusted_proxies=tuple(self.config.trusted_proxies),
                web_root=paths.web_dist(self.repo),
            )
            nginx = paths.nginx_binary()
            argv = [nginx, "-c", str(conf), "-p", f"{prefix}/", "-e", str(self.state / "logs" / "nginx-error.log")]
            return _Spec(
                argv=argv,
                env={},
                match=str(conf),
                ready=self._ready(name),
                timeout=timeout,
                cwd=prefix,
            )
        if name == "prometheus":
            directory = self.state / "prometheus"
            own = f"{HOST}:{p.port('prometheus')}"
            targets = {s: [f"{HOST}:{p.port(s)}"] for s in SERVICES if self.config.services}
            config = monitoring.write_prometheus_config(directory, {**targets, "prometheus": [own]}, self.repo)
            return _Spec(
                argv=monitoring.prometheus_argv(paths.prometheus_binary(), config, directory / "data", own),
                env={},
                match=str(config),
                ready=self._ready(name),
                timeout=timeout,
                cwd=directory,
            )
        raise StackError(f"unknown process {name!r}")

    def service_env(self, name: str) -> dict[str, str]:
        """The environment a service process runs with (see docs/configuration.md)."""
        e = self.endpoints()
        c = self.config
        # service-to-service addresses: trash calls files (restore, hand-overs) and auth (OsmAnd
        # device checks); files calls auth (OsmAnd device checks) and trash (hand-overs); auth
        # calls billing (OsmAnd order ids, hand-overs); billing calls files (hand-overs)
        extra = {"trash": {"FILES_URL": e.service_urls["files"], "AUTH_URL": e.service_urls["auth"]},
                 "files": {"AUTH_URL": e.service_urls["auth"], "TRASH_URL": e.service_urls["trash"]},
                 "auth": {"BILLING_URL": e.service_urls["billing"]},
                 "billing": {"FILES_URL": e.service_urls["files"],
                             "SANDBOX_STORE": "true" if c.sandbox_store else "false",
                             "SANDBOX_RECEIPT_KEY": e.sandbox_receipt_key}}.get(name, {})
        return {
            **c.service_env,
            **extra,
            "HTTP_HOST": HOST,
            "HTTP_PORT": str(self.ports.port(name)),
            "MONGO_URL": e.mongo_url,
            "MONGO_DB": f"{c.db_prefix}{name}",
            "KAFKA_BOOTSTRAP": e.kafka_bootstrap,
            "KAFKA_TOPIC_PREFIX": c.topic_prefix,
            "S3_ENDPOINT": e.s3_endpoint,
            "S3_ACCESS_KEY": e.s3_access_key,
            "S3_SECRET_KEY": e.s3_secret_key,
            "S3_BUCKET": c.s3_bucket,
            "S3_SECURE": "true" if e.s3_secure else "false",
            "SMTP_HOST": e.smtp_host,
            "SMTP_PORT": str(e.smtp_port),
            "GATEWAY_SECRET": self.gateway_secret,
            # the admin API: only the token's digest is configured (docs/operators.md)
            "OPERATOR_TOKEN_SHA256": hashlib.sha256(e.operator_token.encode()).hexdigest() if e.operator_token else "",
            "TEST_CLOCK": "true" if c.test_clock else "false",
            "LOG_LEVEL": c.log_level,
            "PYTHONUNBUFFERED": "1",
        }

    # ---- kafka -------------------------------------------------------------------------------
    def _kafka_java_argv(self, main_class: str, *args: str) -> list[str]:
        lib = paths.kafka_lib_dir()
        return [
            paths.java_binary(),
            f"-Xmx{self.config.kafka_heap}",
            "-Xms128m",
            # a small broker on few cores: its optimizing JIT (C2) and G1's threads cost more CPU
            # than they save — JFR put about half of the broker's CPU under load in its compiler
            # threads; C1 alone and the serial collector took its CPU per small upload from
            # 2.3-2.9 ms to 0.9-1.5 ms (docs/benchmarks.md)
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={paths.kafka_log4j_config(self.repo)}",
            f"-Dkafka.logs.dir={self.state / 'logs'}",
            "-cp",
            f"{lib}/*",  # no shell: java expands the wildcard itself
            main_class,
            *args,
        ]

    def _kafka_properties(self) -> Path:
        kdir = self.state / "kafka"
        data = kdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        p = self.ports
        props = kdir / "server.properties"
        props.write_text(
            "# Generated by osmcloud_localstack: single-node KRaft (broker + controller) for local use.\n"
            "process.roles=broker,controller\n"
            "node.id=1\n"
            f"controller.quorum.bootstrap.servers={HOST}:{p.kafka_controller}\n"
            f"listeners=PLAINTEXT://{HOST}:{p.kafka},CONTROLLER://{HOST}:{p.kafka_controller}\n"
            f"advertised.listeners=PLAINTEXT://{HOST}:{p.kafka}\n"
            "controller.listener.names=CONTROLLER\n"
            "inter.broker.listener.name=PLAINTEXT\n"
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
            f"log.dirs={data}\n"
            "num.partitions=4\n"
            "default.replication.factor=1\n"
            "min.insync.replicas=1\n"
            "auto.create.topics.enable=true\n"
            "group.initial.rebalance.delay.ms=0\n"
            "offsets.topic.num.partitions=4\n"
            "offsets.topic.replication.factor=1\n"
            "transaction.state.log.num.partitions=4\n"
            "transaction.state.log.replication.factor=1\n"
            "transaction.state.log.min.isr=1\n"
            "share.coordinator.state.topic.replication.factor=1\n"
            "share.coordinator.state.topic.min.isr=1\n"
            "num.network.threads=2\n"
            "num.io.threads=4\n"
            "log.retention.hours=168\n"
            "log.segment.bytes=67108864\n"
        )
        return props

    def _format_kafka(self) -> None:
        kdir = self.state / "kafka"
        props = self._kafka_properties()
        if (kdir / "data" / "meta.properties").exists():
            return
        cid_file = kdir / "cluster-id"
        if not cid_file.exists():
            # a leading '-' would make kafka-storage read the id as an option (1 start in 64 failed)
            cid_file.write_text("A" + base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()[1:])
        cluster_id = cid_file.read_text().strip()
        self._log("formatting Kafka storage")
        log = self.state / "logs" / "kafka-format.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        argv = self._kafka_java_argv("kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id,
                                     "-c", str(props))
        with open(log, "ab") as out:
            res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=kdir,
                                 timeout=120)
        if res.returncode != 0:
            raise StackError(
                f"formatting Kafka storage failed (exit {res.returncode}); last lines of {log}:\n{tail(log)}")


def wipe_state_dir(state_dir: Path) -> None:
    """Remove a state directory after stopping whatever still runs from it."""
    state_dir = Path(state_dir).absolute()
    if state_dir.exists():
        Stack.from_state_dir(state_dir).down()
        shutil.rmtree(state_dir)
