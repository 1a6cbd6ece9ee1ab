"""The local stack's supervisor: starts the stack's processes, then restarts any that dies,
with backoff - what compose's ``restart: unless-stopped`` does for containers.

One supervisor process runs per state directory (``run/supervisor.pid``, its output in
``logs/supervisor.log``); ``Stack.up()`` starts it and waits while it starts everything
(``python -m osmcloud_localstack.supervise --state-dir D``, supervise.py). Being the parent of every
process it starts, it learns how each one ended (exit code or signal).

Files it shares with other processes (all under the state directory):
    supervisor.json     what it sees, rewritten after every change (``read_status``): its phase
                        (starting, running, failed, stopped), and per process: state, pid,
                        restarts, last exit, when the next restart is due
    run/<name>.held     "stopped on purpose" (``Stack.stop_process``): not restarted until
                        ``Stack.start_process`` asks (as ``docker stop`` on unless-stopped)
    run/<name>.start    a request to start that process now (JSON: extra environment), written
                        by ``Stack.start_process``; the supervisor removes it and the hold

Backoff: the first restart after a process ran for ``BackoffPolicy.stable_seconds`` waits
``initial`` seconds; each quick death after it doubles the wait, up to ``cap`` - a process
that cannot start retries every ``cap`` seconds instead of spinning. ``make down`` stops the
supervisor first, then the processes.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

STATUS_FILE = "supervisor.json"
SUPERVISOR = "supervisor"
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class BackoffPolicy:
    initial: float = 0.25  # seconds before the first restart
    cap: float = 30.0  # the longest wait between two restarts
    stable_seconds: float = 10.0  # a process that ran this long starts again from `initial`

    def __post_init__(self) -> None:
        if not (0 <= self.initial <= self.cap) or self.cap <= 0 or self.stable_seconds < 0:
            raise ValueError("restart backoff needs 0 <= initial <= cap, cap > 0 "
                             f"(got initial {self.initial}, cap {self.cap})")

    def delay(self, quick_deaths: int) -> float:
        """The wait before a restart, after `quick_deaths` deaths in a row (1 = the first)."""
        if quick_deaths <= 1:
            return self.initial
        # 64 doublings pass any cap (0.25 s * 2**64 is centuries) and stop before the float overflows at 2.0 ** 1024
        doublings = min(quick_deaths - 1, 64)
        return min(self.cap, max(self.initial, 0.25) * 2.0 ** doublings)


def describe_exit(returncode: int | None) -> str:
    """'code 1', 'signal 9 (SIGKILL)', or 'unknown' (a process that was not our child)."""
    if returncode is None:
        return "unknown"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "?"
        return f"signal {-returncode} ({name})"
    return f"code {returncode}"


@dataclass
class ProcessStatus:
    state: str = "starting"  # starting | running | waiting (to restart) | held | stopped
    pid: int | None = None
    restarts: int = 0
    last_exit: str = ""  # describe_exit() of the latest death, "" before any
    last_exit_at: float | None = None
    next_restart_at: float | None = None
    quick_deaths: int = 0  # deaths in a row, each before stable_seconds of running
    started_at: float | None = None
    env: dict[str, str] = field(default_factory=dict)  # extra environment from a start request


def status_path(state_dir: Path) -> Path:
    return Path(state_dir) / STATUS_FILE


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """The supervisor's last written status (see the module docstring), or None."""
    try:
        status: dict[str, Any] = json.loads(status_path(state_dir).read_text())
        return status
    except (OSError, ValueError):
        return None


def held_marker(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.held"


def start_request(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.start"


class Target(Protocol):
    """What a supervisor supervises (a Stack; the unit tests use a small fake)."""

    procs: Any  # ProcessManager

    def process_names(self) -> tuple[str, ...]: ...

    def spawn(self, name: str, env: dict[str, str] | None = None) -> Any: ...


class Supervisor:
    def __init__(self, target: Target, state_dir: Path, policy: BackoffPolicy,
                 log: Callable[[str], None] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.target = target
        self.state_dir = Path(state_dir)
        self.run_dir = target.procs.run_dir
        self.policy = policy
        self.log = log or (lambda msg: None)
        self.clock = clock
        self.phase = "starting"
        self.error = ""
        self.stopping = False
        self.processes: dict[str, ProcessStatus] = {}

    # ---- status file ----------------------------------------------------------------------
    def write_status(self) -> None:
        body = {
            "pid": os.getpid(),
            "phase": self.phase,
            "error": self.error,
            "updated_at": self.clock(),
            "backoff": asdict(self.policy),
            "processes": {name: {k: v for k, v in asdict(s).items() if k != "env"}
                          for name, s in self.processes.items()},
        }
        path = status_path(self.state_dir)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(body, indent=1))
        tmp.replace(path)

    # ---- one pass -------------------------------------------------------------------------
    def adopt(self) -> None:
        """Take the running processes as started (after the stack's start)."""
        now = self.clock()
        for name in self.target.process_names():
            rec = self.target.procs.running(name)
            status = self.processes.setdefault(name, ProcessStatus())
            status.state, status.pid = ("running", rec.pid) if rec else ("waiting", None)
            status.started_at = now if rec else None
            if rec is None:
                status.next_restart_at = now + self.policy.initial
        self.phase = "running"
        self.write_status()

    def step(self) -> None:
        """Look at every process once: start what is asked for, note deaths, restart what is due."""
        changed = False
        for name in self.target.process_names():
            if self.stopping:
                break
            changed |= self._step_one(name, self.processes.setdefault(name, ProcessStatus(state="waiting")))
        if changed:
            self.write_status()

    def _step_one(self, name: str, status: ProcessStatus) -> bool:
        now = self.clock()
        request = start_request(self.run_dir, name)
        held = held_marker(self.run_dir, name)
        if request.exists():
            try:
                status.env = dict(json.loads(request.read_text() or "{}").get("env") or {})
            except (OSError, ValueError, AttributeError):
                status.env = {}
            held.unlink(missing_ok=True)
            request.unlink(missing_ok=True)
            status.quick_deaths = 0
            if self.target.procs.running(name) is None:
                self._note_exit(name, status, now, count=False)
                return self._start(name, status, now, restart=False)
            status.state = "running"
            return True
        rec = self.target.procs.running(name)
        if held.exists():
            if status.state != "held":
                self._note_exit(name, status, now, count=False)
                status.state, status.next_restart_at = "held", None
                status.pid = rec.pid if rec else None
                self.log(f"{name}: held (stopped on purpose); not restarted until started again")
                return True
            if rec is None and status.pid is not None:
                self._note_exit(name, status, now, count=False)
                status.pid = None
                return True
            return False
        if rec is not None:
            if status.state != "running" or status.pid != rec.pid:
                status.state, status.pid, status.next_restart_at = "running", rec.pid, None
                status.started_at = status.started_at or now
                return True
            return False
        # not running, not held: it died (or never came up)
        if status.state == "running" or status.state == "held":
            ran = now - (status.started_at or now)
            status.quick_deaths = 1 if ran >= self.policy.stable_seconds else status.quick_deaths + 1
            self._note_exit(name, status, now, count=True)
            wait = self.policy.delay(status.quick_deaths)
            status.state, status.pid, status.next_restart_at = "waiting", None, now + wait
            self.log(f"{name} died ({status.last_exit}) after {ran:.1f} s; restart in {wait:.2f} s "
                     f"({status.quick_deaths} quick death(s) in a row)")
            return True
        if status.next_restart_at is None:
            status.next_restart_at = now
        if now >= status.next_restart_at:
            return self._start(name, status, now, restart=True)
        return False

    def _note_exit(self, name: str, status: ProcessStatus, now: float, count: bool) -> None:
        """Record how the last process of `name` ended, if we were its parent and it ended."""
        if status.pid is None:
            return
        code = self.target.procs.exit_code_of(status.pid, wait=2.0 if count else 0.0)
        if code is None and not count:
            return
        status.last_exit, status.last_exit_at = describe_exit(code), now

    def _start(self, name: str, status: ProcessStatus, now: float, restart: bool) -> bool:
        # leftovers of the dead process (e.g. nginx workers of a killed master) go first
        self.target.procs.stop(name, timeout=5.0, on_kill=self.log)
        try:
            rec = self.target.spawn(name, status.env or None)
        except Exception as exc:  # noqa: BLE001 - a start that fails is a death like any other
            status.quick_deaths += 1
            wait = self.policy.delay(status.quick_deaths)
            status.state, status.pid, status.next_restart_at = "waiting", None, now + wait
            status.last_exit, status.last_exit_at = f"start failed: {exc}"[:300], now
            self.log(f"{name}: start failed ({exc}); next try in {wait:.2f} s")
            return True
        if restart:
            status.restarts += 1
        status.state, status.pid, status.started_at, status.next_restart_at = "running", rec.pid, now, None
        self.log(f"{name}: {'restarted' if restart else 'started'} (pid {rec.pid}, restart #{status.restarts})")
        return True

    # ---- the loop -------------------------------------------------------------------------
    def run_forever(self) -> None:
        self.adopt()
        while not self.stopping:
            self.step()
            time.sleep(POLL_SECONDS)
        self.phase = "stopped"
        self.write_status()
