"""Port layout of a stack and the check that every port is free before anything starts.

All ports derive from one base port B, so two stacks (``make up`` on 8080, tests on 28080)
never collide:

    gateway B+0   auth B+1   files B+2   trash B+3   billing B+4
    kafka broker B+10   kafka controller B+11   ferretdb B+12   versitygw B+13
    smtp sink (SMTP) B+14   smtp sink (HTTP read API) B+15   prometheus B+16 (make up PROMETHEUS=1)
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from pathlib import Path

# role -> offset from the base port. A "role" names what wants the port; several ports may
# belong to one process (kafka has two, the smtp sink has two).
PORT_OFFSETS: dict[str, int] = {
    "gateway": 0,
    "auth": 1,
    "files": 2,
    "trash": 3,
    "billing": 4,
    "kafka": 10,
    "kafka-controller": 11,
    "ferretdb": 12,
    "versitygw": 13,
    "smtp-sink": 14,
    "smtp-sink-http": 15,
    "prometheus": 16,
}

# process name -> the port roles it listens on
PROCESS_PORTS: dict[str, tuple[str, ...]] = {
    "kafka": ("kafka", "kafka-controller"),
    "ferretdb": ("ferretdb",),
    "versitygw": ("versitygw",),
    "smtp-sink": ("smtp-sink", "smtp-sink-http"),
    "auth": ("auth",),
    "files": ("files",),
    "trash": ("trash",),
    "billing": ("billing",),
    "gateway": ("gateway",),
    "prometheus": ("prometheus",),
}

HOST = "127.0.0.1"


@dataclass(frozen=True)
class PortLayout:
    base: int

    def __post_init__(self) -> None:
        if not 1024 <= self.base <= 65535 - max(PORT_OFFSETS.values()):
            raise ValueError(
                f"base port {self.base} out of range: need 1024..{65535 - max(PORT_OFFSETS.values())}"
            )

    def port(self, role: str) -> int:
        return self.base + PORT_OFFSETS[role]

    def all(self) -> dict[str, int]:
        return {role: self.base + off for role, off in PORT_OFFSETS.items()}

    def for_processes(self, processes: list[str] | tuple[str, ...]) -> dict[str, int]:
        """role -> port for every port the given processes listen on."""
        return {role: self.port(role) for proc in processes for role in PROCESS_PORTS[proc]}

    # conveniences
    @property
    def gateway(self) -> int:
        return self.port("gateway")

    @property
    def kafka(self) -> int:
        return self.port("kafka")

    @property
    def kafka_controller(self) -> int:
        return self.port("kafka-controller")

    @property
    def ferretdb(self) -> int:
        return self.port("ferretdb")

    @property
    def versitygw(self) -> int:
        return self.port("versitygw")

    @property
    def smtp(self) -> int:
        return self.port("smtp-sink")

    @property
    def smtp_http(self) -> int:
        return self.port("smtp-sink-http")


@dataclass(frozen=True)
class PortConflict:
    role: str
    port: int
    holder: str  # "pid 123 (java ...)" or "unknown process"

    def __str__(self) -> str:
        return f"port {self.port} (wanted by {self.role}) is already in use by {self.holder}"


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when we could listen on host:port right now.

    SO_REUSEADDR is set as servers do, so sockets lingering in TIME_WAIT do not count as "in use";
    a listening socket (on this address or on 0.0.0.0) does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def find_conflicts(ports: dict[str, int], host: str = HOST) -> list[PortConflict]:
    """Every port in ``ports`` (role -> port) that is not free, with who holds it if we can tell."""
    return [PortConflict(role, port, describe_listener(port)) for role, port in ports.items()
            if not port_is_free(port, host)]


def describe_listener(port: int) -> str:
    """Best effort: 'pid N (cmdline)' of the process listening on TCP port, via /proc."""
    inodes = _listening_inodes(port)
    if not inodes:
        return "another process"
    proc = Path("/proc")
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            for fd in (pid_dir / "fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    cmd = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                    return f"pid {pid_dir.name} ({cmd[:120]})"
        except (PermissionError, FileNotFoundError, ProcessLookupError):
            continue
    return "another process (not visible to this user)"


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(inode)
    return inodes
