"""Chaos: kill every process of a local stack with SIGKILL, in turn, under a mix of clients on
both APIs (files also as one of two replicas behind the gateway: fault `files-replica`), and
check after each fault that nothing acknowledged was lost (issue 21).

    make chaos                                   # the full run: every process, twice
    .venv/bin/python benchmarks/chaos.py --kills 1 --clients 4 --faults files,kafka
    .venv/bin/python benchmarks/chaos.py --markdown docs-table.md   # also write the table as Markdown

Its own stack on a free base port (loopback only, stopped at the end), with the sandbox store
(purchases carry receipts signed with the stack's generated key) and the shortened recovery
timeouts of osmcloud_localstack.chaos.CHAOS_SERVICE_ENV. Clients (half native /api, half
OsmAnd's /userdata/) sign up, buy Pro or take Start, upload small and large files, delete,
restore, delete now, empty the trash and delete their accounts while the faults go on. Per
fault it prints what it did and every violation; at the end one table: fault, requests,
errors during the fault, seconds to recover, who restarted it (a supervisor, or this command
after a few seconds), seconds to settle, lost, orphans, duplicates, other violations, events
Kafka holds more than once (allowed). Exit code 1 on any violation. Invariants:
infra/localstack/src/osmcloud_localstack/invariants.py; results: docs/faults.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from osmcloud_localstack.chaos import CHAOS_SERVICE_ENV, FAULTS, Chaos, LocalControl, Plan, markdown_table, table
from osmcloud_localstack.own_stack import own_stack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help=f"processes to kill, in order (default {','.join(FAULTS)})")
    parser.add_argument("--kills", type=int, default=2, help="rounds: kills of each process (default 2)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--warm", type=float, default=4.0, help="seconds of traffic before each kill (default 4)")
    parser.add_argument("--after", type=float, default=4.0, help="seconds of traffic after recovery (default 4)")
    parser.add_argument("--settle", type=float, default=90.0,
                        help="at most this long for invariants to hold (default 90)")
    parser.add_argument("--deadline", type=float, default=1500.0,
                        help="no new fault after this many seconds (default 1500)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown to this file")
    args = parser.parse_args()
    faults = tuple(f for f in args.faults.split(",") if f)
    unknown = set(faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown processes {sorted(unknown)}; choose from {', '.join(FAULTS)}")
    plan = Plan(faults=faults, kills=args.kills, clients=args.clients, warm=args.warm, after=args.after,
                settle=args.settle, deadline=args.deadline, seed=args.seed)
    started = time.monotonic()
    logs = Path(".state") / f"chaos-logs-{int(time.time())}"
    with own_stack("chaos", sandbox_store=True, log_level="warning", service_env=dict(CHAOS_SERVICE_ENV),
                   log=lambda m: print(f"  [stack] {m}", flush=True), keep_logs=logs) as (stack, endpoints):
        print(f"chaos on {endpoints.gateway_url}: {len(faults)} processes x {plan.kills}, {plan.clients} clients",
              flush=True)
        rows = asyncio.run(Chaos(LocalControl(stack), endpoints, plan, say=lambda m: print(m, flush=True)).run())
    print()
    print(table(rows))
    bad = [r for r in rows if not r.ok]
    print(f"\n{len(rows)} faults in {time.monotonic() - started:.0f} s; "
          + (f"VIOLATIONS after {', '.join(r.fault for r in bad)}" if bad
             else "every invariant held after every fault"))
    print(f"the stack's logs: {logs}")
    if args.markdown:
        args.markdown.write_text(markdown_table(rows) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
