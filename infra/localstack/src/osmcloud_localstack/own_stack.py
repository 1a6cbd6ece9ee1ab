"""A stack of its own for a benchmark or a test that must not share one: on a free base
port, state under .state/<name>-<port>, stopped and removed at the end whatever happened.

    with own_stack("chaos", sandbox_store=True) as (stack, endpoints):
        ...
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .paths import repo_root
from .ports import HOST, PORT_OFFSETS
from .stack import Endpoints, Stack, StackConfig


def free_base_port(low: int = 21000, high: int = 32000) -> int:
    """A base port whose whole block (every process's port) is free now; drawn at random
    below Linux's ephemeral ports, so parallel runs rarely pick the same block."""
    span = max(PORT_OFFSETS.values()) + 1
    for _ in range(200):
        base = low + int.from_bytes(os.urandom(2), "big") % (high - low - span)
        if all(_free(port) for port in range(base, base + span)):
            return base
    raise RuntimeError(f"no free block of {span} ports between {low} and {high}")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
            return True
        except OSError:
            return False


@contextlib.contextmanager
def own_stack(name: str, base_port: int | None = None, log: Callable[[str], None] | None = None,
              keep_logs: Path | None = None, **config: Any) -> Iterator[tuple[Stack, Endpoints]]:
    """Starts a stack (StackConfig fields as keywords) and yields it with its endpoints; stops
    it and removes its state directory afterwards (copying its logs to `keep_logs` first)."""
    base = base_port or free_base_port()
    state = repo_root() / ".state" / f"{name}-{base}"
    shutil.rmtree(state, ignore_errors=True)
    stack = Stack(StackConfig(state_dir=state, base_port=base, **config), log=log)
    try:
        yield stack, stack.up()
    finally:
        stack.down()
        if keep_logs is not None and (state / "logs").is_dir():
            shutil.copytree(state / "logs", keep_logs, dirs_exist_ok=True)
        shutil.rmtree(state, ignore_errors=True)


@contextlib.contextmanager
def attached_or_own(attach: str | Path | None, name: str, **config: Any) -> Iterator[tuple[Stack, Endpoints]]:
    """A benchmark's stack: the running one of state directory `attach` (left running), or
    else one of its own, as own_stack starts and removes it (its progress printed)."""
    if attach:
        stack = Stack.from_state_dir(Path(attach))  # its generated secrets, the sandbox key among them
        yield stack, stack.endpoints()
        return
    with own_stack(name, log=lambda m: print(f"  {m}"), **config) as (stack, endpoints):
        print(f"started a stack of its own (state {stack.state}); it is removed at the end")
        yield stack, endpoints
