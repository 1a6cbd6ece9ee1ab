"""What read-your-writes costs each write (docs/adr/0004-read-your-writes.md, docs/consistency.md).

    .venv/bin/python benchmarks/read_your_writes.py                 # own stack, stopped at the end
    .venv/bin/python benchmarks/read_your_writes.py --count 300 --rounds 2

One stack, measured in phases that alternate "before" (every service with HANDOVER=false: writes
answer without handing their events over, as before ADR 0004) and "after" (the default), the
services restarted between phases; each phase signs up fresh accounts. Per write it prints p50
and p99 of the client-side latency through the gateway, before and after, and the change of the
p50. Target (issue 15): the p50 of an upload grows by at most 2 ms.

Writes (N each per phase): upload of a new 1 KiB file (hands nothing over), upload over a
trashed file (hands file-uploaded to trash), delete (file-deleted to trash), restore from the
trash (synchronous already; for comparison), delete now and empty trash (trash-item-purged to
files), delete a type (file-deleted to trash), renewal through a purchase
(subscription-renewed to files), Start activation (subscription-activated to files; one per
account).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp

from osmcloud_billing.receipts import sign_sandbox_receipt
from osmcloud_localstack.client import GatewayClient, login
from osmcloud_localstack.own_stack import own_stack
from osmcloud_localstack.stack import SERVICES, Stack

BODY = b"x" * 1024


class Timings:
    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = {}

    async def time(self, name: str, call, expect: int | tuple[int, ...]) -> object:
        started = time.perf_counter()
        reply = await call
        self.ms.setdefault(name, []).append((time.perf_counter() - started) * 1000)
        wanted = (expect,) if isinstance(expect, int) else expect
        if reply.status not in wanted:
            raise RuntimeError(f"{name}: {reply.status} {reply.body}")
        return reply


async def trashed(me: GatewayClient, deletion) -> str:
    """The trash item of a delete's answer (its id is the delete marker's); polled, because
    before the hand-over it arrives through Kafka."""
    reply = await deletion
    item_id = reply.body["version_id"]
    for _ in range(500):
        items = (await me.call("GET", "/api/trash")).body
        if any(x["id"] == item_id for m in items["months"] for x in m["items"]):
            return item_id
        await asyncio.sleep(0.02)
    raise RuntimeError(f"{item_id} never reached the trash")


async def plan_known(me: GatewayClient, plan: str) -> None:
    for _ in range(500):
        if (await me.call("GET", "/api/files/usage")).body.get("plan") == plan:
            return
        await asyncio.sleep(0.02)
    raise RuntimeError(f"files never learned the {plan} plan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def phase(gateway_url: str, sink_url: str, sandbox_key: str, count: int, accounts: int,
                t: Timings) -> None:
    async with aiohttp.ClientSession() as session:
        gw = GatewayClient(session, gateway_url)
        users = []
        for _ in range(accounts):
            me, _ = await login(gw, sink_url)
            await t.time("start plan", me.call("POST", "/api/billing/start"), 201)
            users.append(me)
        now = datetime.now(UTC)
        per_user = max(1, count // accounts)
        for u, me in enumerate(users):
            order = f"GPA.{uuid.uuid4().hex[:12]}"
            for i in range(per_user):
                receipt = sign_sandbox_receipt(sandbox_key, platform="sandbox", order_id=order,
                                               product_id="osmcloud.pro.monthly", purchased_at=now,
                                               expires_at=now + timedelta(days=30 + i))
                body = {"platform": "sandbox", "product_id": "osmcloud.pro.monthly", "order_id": order,
                        "receipt": receipt}
                await t.time("purchase / renewal" if i else "purchase (first)",
                             me.call("POST", "/api/billing/purchases", json=body), 201)
            await plan_known(me, "pro")  # before the hand-over, files learns the plan from Kafka
            for i in range(per_user):
                name = f"bench/{u}-{i}.gpx"
                await t.time("upload (new file)", me.call("PUT", f"/api/files/FAVOURITES/{name}", data=BODY), 201)
                await t.time("delete", me.call("DELETE", f"/api/files/FAVOURITES/{name}"), 200)
                await t.time("upload over a trashed file",
                             me.call("PUT", f"/api/files/FAVOURITES/{name}", data=BODY), 201)
                item = await trashed(me, me.call("DELETE", f"/api/files/FAVOURITES/{name}"))
                await t.time("restore from the trash", me.call("POST", f"/api/trash/items/{item}/restore"), 200)
                item = await trashed(me, me.call("DELETE", f"/api/files/FAVOURITES/{name}"))
                await t.time("delete now", me.call("DELETE", f"/api/trash/items/{item}"), 200)
                await me.call("PUT", f"/api/files/OSM_NOTES/{name}", data=BODY)
                await t.time("delete a type", me.call("DELETE", "/api/files/types/OSM_NOTES"), 200)
                await t.time("empty trash", me.call("DELETE", "/api/trash"), 200)


def restart_services(stack: Stack, handover: bool) -> None:
    # the stack's supervisor starts them, with this on top of the environment it inherited
    env = {"HANDOVER": "true" if handover else "false"}
    for name in SERVICES:
        stack.stop_process(name)
    for name in SERVICES:
        stack.start_process(name, env=env)


def report(before: Timings, after: Timings) -> bool:
    print(f"\n{'write':<28} {'n':>5} {'before p50':>11} {'p99':>8} {'after p50':>10} {'p99':>8} {'p50 change':>11}")
    upload_ok = True
    for name in after.ms:
        b, a = before.ms.get(name, []), after.ms[name]
        if not b:
            continue
        b50, a50 = statistics.median(b), statistics.median(a)
        print(f"{name:<28} {len(a):>5} {b50:>9.1f}ms {percentile(b, 0.99):>6.1f}ms {a50:>8.1f}ms "
              f"{percentile(a, 0.99):>6.1f}ms {a50 - b50:>+9.1f}ms")
        if name == "upload (new file)":
            upload_ok = a50 - b50 <= 2.0
    print(f"\nupload p50 grows by at most 2 ms: {'met' if upload_ok else 'MISSED'}")
    return upload_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="writes of each kind per phase (default 200)")
    parser.add_argument("--accounts", type=int, default=10, help="accounts per phase (default 10)")
    parser.add_argument("--rounds", type=int, default=1, help="before/after pairs of phases (default 1)")
    args = parser.parse_args()

    os.environ["HANDOVER"] = "false"
    before, after = Timings(), Timings()
    try:
        with own_stack("bench-ryw", sandbox_store=True) as (stack, endpoints):
            print(f"a stack of its own on base port {stack.config.base_port} (state {stack.state})")
            for r in range(args.rounds):
                for handover, timings in ((False, before), (True, after)):
                    if r or handover:
                        restart_services(stack, handover)
                    label = "after (hand-over on)" if handover else "before (HANDOVER=false)"
                    started = time.monotonic()
                    asyncio.run(phase(endpoints.gateway_url, endpoints.smtp_sink_url, endpoints.sandbox_receipt_key,
                                      args.count, args.accounts, timings))
                    print(f"  round {r + 1}, {label}: {time.monotonic() - started:.1f} s")
        return 0 if report(before, after) else 1
    finally:
        os.environ.pop("HANDOVER", None)

if __name__ == "__main__":
    sys.exit(main())
