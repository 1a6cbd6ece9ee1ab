"""Starting and stopping local processes with PID files.

Each process gets ``RUN/<name>.pid`` (JSON: pid, its start time from /proc, argv, a match token)
and its output in ``LOGS/<name>.log``. Processes run in their own session (process group), so
they outlive the command that started them and can be stopped as a group.

Stopping only ever signals a PID whose /proc entry still is the process we started: same start
time (so a recycled PID never matches) and a command line containing the recorded token. After
a crash, ``stop`` therefore ends whatever of ours is still running and nothing else.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class PidRecord:
    name: str
    pid: int
    starttime: int  # field 22 of /proc/<pid>/stat (clock ticks after boot)
    argv: list[str]
    match: str  # must occur in the space-joined /proc/<pid>/cmdline
    log: str
    started_at: float = field(default_factory=time.time)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid pgrp session ..." - comm may contain spaces and parentheses
    rest = raw[raw.rfind(")") + 2 :].split()
    return [str(pid), "comm", *rest]


def proc_starttime(pid: int) -> int | None:
    f = _stat_fields(pid)
    return int(f[21]) if f and len(f) > 21 else None


def proc_state(pid: int) -> str | None:
    f = _stat_fields(pid)
    return f[2] if f else None


def proc_cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def is_running(pid: int) -> bool:
    state = proc_state(pid)
    return state is not None and state not in ("Z", "X")


def record_matches(rec: PidRecord) -> bool:
    """True when rec.pid is alive and still the very process we started."""
    for attempt in range(5):
        if not is_running(rec.pid):
            return False
        if proc_starttime(rec.pid) != rec.starttime:
            return False
        cmd = proc_cmdline(rec.pid)
        if cmd is not None and rec.match in cmd:
            return True
        # Same process (same start time) but the token is missing: it may be rewriting its
        # title right now (nginx: "nginx: master process ..."); look again shortly.
        time.sleep(0.02 * (attempt + 1))
    return False


def group_members(rec: PidRecord) -> list[int]:
    """Live processes other than the leader still in the session and process group it led
    (e.g. nginx workers of a killed master). Only meaningful once the leader's PID is free."""
    members = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        pid = int(d.name)
        f = _stat_fields(pid)
        if not f or len(f) <= 21:
            continue
        if f[2] in ("Z", "X"):
            continue
        if pid != rec.pid and int(f[4]) == rec.pid and int(f[5]) == rec.pid and int(f[21]) >= rec.starttime:
            members.append(pid)
    return members


class ProcessManager:
    def __init__(self, run_dir: Path, log_dir: Path) -> None:
        self.run_dir = run_dir
        self.log_dir = log_dir
        self._popen: dict[int, subprocess.Popen[bytes]] = {}

    # -- records ---------------------------------------------------------------------------
    def pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def read(self, name: str) -> PidRecord | None:
        try:
            data = json.loads(self.pidfile(name).read_text())
            return PidRecord(**data)
        except (OSError, ValueError, TypeError):
            return None

    def recorded_names(self) -> list[str]:
        if not self.run_dir.exists():
            return []
        return sorted(p.stem for p in self.run_dir.glob("*.pid"))

    def running(self, name: str) -> PidRecord | None:
        rec = self.read(name)
        if rec is None:
            return None
        self._reap(rec.pid)
        return rec if record_matches(rec) else None

    # -- start -----------------------------------------------------------------------------
    def start(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        match: str,
    ) -> PidRecord:
        if self.running(name):
            raise RuntimeError(f"{name} is already running (see {self.pidfile(name)})")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path(name)
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        with open(log, "ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}: {' '.join(argv)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=str(cwd) if cwd else None,
                start_new_session=True,
                close_fds=True,
            )
        self._popen[proc.pid] = proc
        starttime = proc_starttime(proc.pid)
        rec = PidRecord(name=name, pid=proc.pid, starttime=starttime or -1, argv=argv, match=match, log=str(log))
        tmp = self.pidfile(name).with_suffix(".pid.tmp")
        tmp.write_text(json.dumps(asdict(rec), indent=1))
        tmp.replace(self.pidfile(name))
        return rec

    def exit_code(self, rec: PidRecord) -> int | None:
        """Exit code if we are the parent and it has exited, else None."""
        return self.exit_code_of(rec.pid)

    def exit_code_of(self, pid: int, wait: float = 0.0) -> int | None:
        """How a child we started ended (Popen's returncode: negative = killed by that
        signal), waiting up to `wait` seconds for it (a big process killed with SIGKILL takes
        a moment to become a zombie); None while it runs or when this process did not start it."""
        proc = self._popen.get(pid)
        if proc is None:
            return None
        try:
            return proc.wait(wait) if wait > 0 else proc.poll()
        except subprocess.TimeoutExpired:
            return None

    # -- stop ------------------------------------------------------------------------------
    def stop(self, name: str, timeout: float = 15.0, on_kill: Callable[[str], None] | None = None) -> str:
        """Stop the recorded process (and its process group): SIGTERM, wait, SIGKILL.

        Returns a short description of what happened; removes the PID file."""
        rec = self.read(name)
        if rec is None:
            self.pidfile(name).unlink(missing_ok=True)
            return "not running"
        self._reap(rec.pid)
        leader = record_matches(rec)
        # Orphans are looked for only when the leader's PID is free: while a process group
        # has members, Linux does not hand its id out as a new PID, so they are ours. A live
        # PID that does not match (recycled, or running something else) is never touched.
        targets = group_members(rec) if not leader and proc_state(rec.pid) in (None, "Z", "X") else []
        if not leader and not targets:
            self.pidfile(name).unlink(missing_ok=True)
            return "not running (stale PID file removed)"

        def signal_all(sig: int) -> None:
            if leader:
                try:
                    os.killpg(rec.pid, sig)
                except ProcessLookupError:
                    pass
                except PermissionError:
                    try:
                        os.kill(rec.pid, sig)
                    except ProcessLookupError:
                        pass
            for pid in targets:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass

        def still_alive() -> bool:
            self._reap(rec.pid)
            if leader and record_matches(rec):
                return True
            return any(is_running(p) and (proc_starttime(p) or 0) >= rec.starttime
                       for p in group_members(rec) + targets)

        signal_all(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not still_alive():
                self.pidfile(name).unlink(missing_ok=True)
                return f"stopped (pid {rec.pid})"
            time.sleep(0.1)
        if on_kill:
            on_kill(f"{name} did not stop within {timeout:.0f} s after SIGTERM; sending SIGKILL")
        signal_all(signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and still_alive():
            time.sleep(0.1)
        self.pidfile(name).unlink(missing_ok=True)
        return f"killed (pid {rec.pid})"

    def _reap(self, pid: int) -> None:
        proc = self._popen.get(pid)
        if proc is not None:
            proc.poll()


def tail(path: Path | str, lines: int = 30) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(data.splitlines()[-lines:])
