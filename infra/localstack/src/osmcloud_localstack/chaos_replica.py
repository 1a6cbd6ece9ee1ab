"""A second files replica behind the local stack's gateway, for the chaos run's `files-replica`
fault: what a scaled deployment runs (compose's `--scale files=2`, the Helm chart's replicas).

The local stack runs one process per service. For the fault, a second files process is started
on a free port with the stack's own environment for files (same database, Kafka, bucket), and
the gateway's rendered configuration gets it as a second `server` of `upstream osmcloud_files`
(with the template's own parameters, as compose's DNS name gives nginx both addresses), then
nginx reloads (SIGHUP). Afterwards the configuration is put back, nginx reloads again and the
replica is stopped. Service-to-service calls (trash and billing to files) keep going to the
stack's own files process: only the gateway balances."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from . import paths, readiness
from .ports import HOST
from .procs import is_running
from .stack import Stack

_FILES_UPSTREAM = re.compile(r"(upstream osmcloud_files \{\s*\n(\s*)server )(\S+)( [^;\n]*)?;")


def with_second_server(conf: str, address: str) -> str:
    """The rendered gateway configuration with `address` as a second server of files' upstream,
    with the same parameters (max_fails, fail_timeout) as the first."""
    match = _FILES_UPSTREAM.search(conf)
    if match is None:
        raise ValueError("no `upstream osmcloud_files { server ...; }` in the gateway's configuration")
    params = match.group(4) or ""
    line = f"\n{match.group(2)}server {address}{params};"
    return conf[:match.end()] + line + conf[match.end():]


def _workers(master: int) -> set[int]:
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return set()
    return {int(c) for c in children}


def reload_gateway(stack: Stack, timeout: float = 30.0) -> None:
    """SIGHUP to nginx's master; returns once the workers of the old configuration are gone."""
    rec = stack.procs.running("gateway")
    if rec is None:
        raise RuntimeError("the gateway is not running; cannot reload it")
    old = _workers(rec.pid)
    os.kill(rec.pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while any(is_running(pid) for pid in old) or not _workers(rec.pid) - old:
        if time.monotonic() > deadline:
            raise RuntimeError(f"nginx did not reload within {timeout:.0f} s; see {stack.state / 'logs'}")
        time.sleep(0.05)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def second_files_replica(stack: Stack, timeout: float = 180.0) -> Iterator[str]:
    """Runs a second files process behind the gateway; yields its address (host:port)."""
    port = _free_port()
    address = f"{HOST}:{port}"
    log_path = stack.state / "logs" / "files-replica.log"
    env = {**os.environ, **stack.service_env("files"), "HTTP_PORT": str(port)}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([paths.venv_python(stack.repo), "-m", "osmcloud_files"], env=env, cwd=stack.state,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    conf = stack.state / "nginx" / "conf.d" / "default.conf"
    original: str | None = None
    try:
        deadline = time.monotonic() + timeout
        while (reason := readiness.http_ok(f"http://{address}/readyz")) is not None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the second files replica is not ready ({reason}); see {log_path}")
            time.sleep(0.2)
        original = conf.read_text()
        conf.write_text(with_second_server(original, address))
        reload_gateway(stack)
        yield address
    finally:
        if original is not None and stack.procs.running("gateway"):
            conf.write_text(original)
            reload_gateway(stack)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
