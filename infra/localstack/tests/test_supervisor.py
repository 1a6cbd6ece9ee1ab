"""The supervisor restarts what dies, with backoff, and leaves alone what was stopped on purpose
(real child processes; a small stand-in for the stack)."""

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from osmcloud_localstack.procs import ProcessManager, is_running
from osmcloud_localstack.supervisor import (
    BackoffPolicy,
    Supervisor,
    describe_exit,
    held_marker,
    read_status,
    start_request,
)


class Processes:
    """Stand-in for a Stack: named Python one-liners under a ProcessManager."""

    def __init__(self, tmp_path: Path, programs: dict[str, str]) -> None:
        self.procs = ProcessManager(tmp_path / "run", tmp_path / "logs")
        self.programs = programs
        self.token = f"osmcloud-supervisor-test-{os.getpid()}-{time.monotonic_ns()}"
        self.envs: list[dict[str, str] | None] = []

    def process_names(self) -> tuple[str, ...]:
        return tuple(self.programs)

    def spawn(self, name: str, env: dict[str, str] | None = None):
        self.envs.append(env)
        return self.procs.start(name, [sys.executable, "-c", f"{self.programs[name]}  # {self.token} {name}"],
                                env=env, match=f"{self.token} {name}")

    def stop_all(self) -> None:
        for name in self.programs:
            self.procs.stop(name, timeout=5)


SLEEP = "import time; time.sleep(120)"


@pytest.fixture
def sleepers(tmp_path: Path):
    target = Processes(tmp_path, {"one": SLEEP, "two": SLEEP})
    yield target
    target.stop_all()


def run_until(supervisor: Supervisor, done, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"not done within {timeout} s: {read_status(supervisor.state_dir)}"
        supervisor.step()
        time.sleep(0.02)


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = BackoffPolicy(initial=0.25, cap=4.0)
    assert [policy.delay(n) for n in range(1, 8)] == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert BackoffPolicy(initial=0, cap=1).delay(1) == 0
    with pytest.raises(ValueError):
        BackoffPolicy(initial=5, cap=1)


def test_backoff_stays_at_the_cap_however_long_a_process_keeps_dying() -> None:
    # a broken service left to crash-loop for hours: ~1,025 quick deaths at a 30 s cap (2.0 ** 1024 overflows)
    policy = BackoffPolicy(initial=0.25, cap=30.0)
    assert [policy.delay(n) for n in (1_025, 1_100, 10**6)] == [30.0, 30.0, 30.0]


def test_exits_are_described_by_code_or_signal() -> None:
    assert describe_exit(3) == "code 3"
    assert describe_exit(-9) == "signal 9 (SIGKILL)"
    assert describe_exit(None) == "unknown"


def test_a_killed_process_is_restarted_and_its_exit_recorded(tmp_path: Path, sleepers: Processes) -> None:
    for name in sleepers.process_names():
        sleepers.spawn(name)
    supervisor = Supervisor(sleepers, tmp_path, BackoffPolicy(initial=0, cap=1))
    supervisor.adopt()
    old = sleepers.procs.running("one").pid
    os.kill(old, signal.SIGKILL)
    run_until(supervisor, lambda: (r := sleepers.procs.running("one")) is not None and r.pid != old)
    status = read_status(tmp_path)
    one, two = status["processes"]["one"], status["processes"]["two"]
    assert status["phase"] == "running"
    assert one["restarts"] == 1 and one["state"] == "running" and one["pid"] != old
    # the supervisor started them (its ProcessManager): it is their parent and learns how they ended
    assert one["last_exit"] == "signal 9 (SIGKILL)"
    assert two["restarts"] == 0 and two["last_exit"] == ""
    new = one["pid"]
    os.kill(new, signal.SIGKILL)
    run_until(supervisor, lambda: (r := sleepers.procs.running("one")) is not None and r.pid != new)
    assert read_status(tmp_path)["processes"]["one"]["last_exit"] == "signal 9 (SIGKILL)"
    assert read_status(tmp_path)["processes"]["one"]["restarts"] == 2


def test_a_crash_loop_backs_off_instead_of_spinning(tmp_path: Path) -> None:
    target = Processes(tmp_path, {"crashy": "import sys; sys.exit(3)"})
    supervisor = Supervisor(target, tmp_path, BackoffPolicy(initial=0.05, cap=0.4, stable_seconds=10))
    supervisor.adopt()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.5:
        supervisor.step()
        time.sleep(0.02)
    crashy = read_status(tmp_path)["processes"]["crashy"]
    # waits 0.05, 0.1, 0.2, then 0.4 each (plus the time each run takes): a handful, not hundreds
    assert 3 <= crashy["restarts"] <= 9, crashy
    assert crashy["last_exit"] == "code 3"
    assert crashy["quick_deaths"] >= 3
    target.stop_all()


def test_a_process_stopped_on_purpose_stays_stopped_until_started(tmp_path: Path, sleepers: Processes) -> None:
    for name in sleepers.process_names():
        sleepers.spawn(name)
    supervisor = Supervisor(sleepers, tmp_path, BackoffPolicy(initial=0, cap=1))
    supervisor.adopt()
    held_marker(sleepers.procs.run_dir, "one").write_text("")
    supervisor.step()
    assert read_status(tmp_path)["processes"]["one"]["state"] == "held"
    pid = sleepers.procs.running("one").pid
    sleepers.procs.stop("one", timeout=5)
    for _ in range(10):
        supervisor.step()
    assert sleepers.procs.running("one") is None and not is_running(pid)
    assert read_status(tmp_path)["processes"]["one"]["restarts"] == 0

    start_request(sleepers.procs.run_dir, "one").write_text(json.dumps({"env": {"EXTRA": "1"}}))
    supervisor.step()
    assert sleepers.procs.running("one") is not None
    assert not held_marker(sleepers.procs.run_dir, "one").exists()
    assert not start_request(sleepers.procs.run_dir, "one").exists()
    assert sleepers.envs[-1] == {"EXTRA": "1"}
    assert read_status(tmp_path)["processes"]["one"]["state"] == "running"


def test_a_start_that_fails_is_retried_with_backoff(tmp_path: Path) -> None:
    class Failing(Processes):
        def spawn(self, name, env=None):
            raise RuntimeError("port 1 in use")

    target = Failing(tmp_path, {"never": SLEEP})
    supervisor = Supervisor(target, tmp_path, BackoffPolicy(initial=0.05, cap=0.2))
    supervisor.adopt()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0:
        supervisor.step()
        time.sleep(0.02)
    never = read_status(tmp_path)["processes"]["never"]
    assert never["state"] == "waiting" and "port 1 in use" in never["last_exit"]
    assert never["quick_deaths"] <= 8
