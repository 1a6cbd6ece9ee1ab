"""PID files: only the process we started is ever signalled."""

import json
import subprocess
import sys
import time
from pathlib import Path

from osmcloud_localstack.procs import ProcessManager, is_running, record_matches


def _sleeper(pm: ProcessManager, name: str, token: str) -> int:
    rec = pm.start(name, [sys.executable, "-c", f"import time; time.sleep(60)  # {token}"], match=token)
    return rec.pid


def test_start_records_and_stop_ends_the_process(tmp_path: Path) -> None:
    pm = ProcessManager(tmp_path / "run", tmp_path / "logs")
    pid = _sleeper(pm, "sleeper", "osmcloud-test-token-1")
    rec = pm.running("sleeper")
    assert rec is not None and rec.pid == pid and record_matches(rec)
    assert "stopped" in pm.stop("sleeper", timeout=5)
    assert not is_running(pid)
    assert not pm.pidfile("sleeper").exists()
    assert pm.stop("sleeper") == "not running"


def test_a_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    """A PID file whose start time does not match the live process is stale: nothing is killed."""
    pm = ProcessManager(tmp_path / "run", tmp_path / "logs")
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)  # stranger"])
    try:
        pm.pidfile("ghost").parent.mkdir(parents=True, exist_ok=True)
        pm.pidfile("ghost").write_text(json.dumps({
            "name": "ghost", "pid": stranger.pid, "starttime": 1, "argv": ["x"], "match": "stranger", "log": "",
        }))
        assert pm.running("ghost") is None
        assert "not running" in pm.stop("ghost", timeout=1)
        time.sleep(0.2)
        assert stranger.poll() is None  # still alive
    finally:
        stranger.kill()
        stranger.wait()


def test_a_pid_running_something_else_is_not_ours(tmp_path: Path) -> None:
    pm = ProcessManager(tmp_path / "run", tmp_path / "logs")
    pid = _sleeper(pm, "sleeper", "osmcloud-test-token-2")
    data = json.loads(pm.pidfile("sleeper").read_text())
    data["match"] = "some-other-program"
    pm.pidfile("sleeper").write_text(json.dumps(data))
    assert pm.running("sleeper") is None
    pm.stop("sleeper", timeout=1)
    assert is_running(pid)
    # restore and stop for real
    data["match"] = "osmcloud-test-token-2"
    pm.pidfile("sleeper").write_text(json.dumps(data))
    pm.stop("sleeper", timeout=5)
    assert not is_running(pid)


def test_children_left_by_a_dead_leader_are_stopped(tmp_path: Path) -> None:
    """After a crash of the process we started, its process group is still cleaned up."""
    pm = ProcessManager(tmp_path / "run", tmp_path / "logs")
    child_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(child_file)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)  # osmcloud-test-token-3\n"
    )
    rec = pm.start("parent", [sys.executable, "-c", code], match="osmcloud-test-token-3")
    deadline = time.monotonic() + 10
    while not (child_file.exists() and child_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    children = [int(child_file.read_text())]
    subprocess.run(["kill", "-9", str(rec.pid)], check=True)
    pm.running("parent")  # reaps the leader
    assert all(is_running(c) for c in children)
    assert "stopped" in pm.stop("parent", timeout=5)
    assert not any(is_running(c) for c in children)
