"""The supervisor process of a local stack: ``python -m osmcloud_localstack.supervise --state-dir D``
(started by ``Stack.up()``). It starts the stack recorded in D/stack.json, reports the start
in D/supervisor.json, then restarts whatever dies (supervisor.py) until SIGTERM (``make down``)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from .stack import Stack
from .supervisor import Supervisor


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signum} while starting")


def _install_stop_handlers(supervisor: Supervisor) -> None:
    def stop(_signum: int, _frame: object) -> None:
        supervisor.stopping = True  # the loop ends after the current step; nothing is half-started

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m osmcloud_localstack.supervise")
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)

    def say(msg: str) -> None:
        print(msg, flush=True)

    stack = Stack.from_state_dir(args.state_dir.absolute(), log=say)
    supervisor = Supervisor(stack, stack.state, stack.backoff, log=say)
    supervisor.write_status()
    # while starting, a stop (make down) ends the start, which stops what it started
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        stack.start_all()
    except BaseException as exc:  # noqa: BLE001 - reported to Stack.up() through the status file
        supervisor.phase, supervisor.error = "failed", str(exc) or type(exc).__name__
        supervisor.write_status()
        say(f"start failed: {supervisor.error}")
        sys.exit(1)
    _install_stop_handlers(supervisor)
    say("watching: a process that dies is restarted")
    supervisor.run_forever()
    say("supervisor stopped")


if __name__ == "__main__":
    main()
