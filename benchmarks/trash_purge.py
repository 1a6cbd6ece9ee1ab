"""Trash benchmark, on its own local stack (free base port, state in .state/bench-trash-<port>, removed at the end):

1. event lag: from a DELETE's HTTP response to the item being listed by GET /api/trash
   (p50/p99 over --deletes deletes; target p99 < 200 ms on loopback);
2. purge throughput: --items expired items (trash items, files' versions and heads, and a
   small blob each) seeded straight into the databases and the bucket in bulk, then the
   shared clock moved 31 days: time until every item, version, head and blob is gone
   (target: 100,000 items in under 60 s).

    .venv/bin/python benchmarks/trash_purge.py [--items 100000] [--deletes 1000] [--timeout 900]
"""

import argparse
import asyncio
import io
import json
import os
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from minio import Minio
from pymongo import AsyncMongoClient

from osmcloud_common.clock import set_shared_offset
from osmcloud_localstack.client import GatewayClient, login
from osmcloud_localstack.own_stack import own_stack


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def event_lag(endpoints, deletes: int) -> None:
    async with aiohttp.ClientSession() as session:
        gateway = GatewayClient(session, endpoints.gateway_url)
        lags: list[float] = []
        answered: dict[str, float] = {}  # tombstone -> wall time of the DELETE's answer
        listed_at: dict[str, float] = {}
        per_user = 100
        for u in range((deletes + per_user - 1) // per_user):
            me, _ = await login(gateway, endpoints.smtp_sink_url)
            assert (await me.call("POST", "/api/billing/start")).status == 201
            while (await me.call("GET", "/api/files/usage")).body["quota_bytes"] == 0:
                await asyncio.sleep(0.05)
            names = [f"lag/{u}-{i}.osn" for i in range(min(per_user, deletes - len(lags)))]
            for name in names:
                assert (await me.call("PUT", f"/api/files/OSM_NOTES/{name}", data=b"note")).status == 201
            await asyncio.sleep(0.5)
            for name in names:
                reply = await me.call("DELETE", f"/api/files/OSM_NOTES/{name}")
                assert reply.status == 200, reply
                t0, tombstone = time.perf_counter(), reply.body["version_id"]
                answered[tombstone] = time.time()
                while True:
                    listed = (await me.call("GET", "/api/trash")).body
                    if any(i["id"] == tombstone for m in listed["months"] for i in m["items"]):
                        lags.append((time.perf_counter() - t0) * 1000)
                        listed_at[tombstone] = time.time()
                        break
                    if time.perf_counter() - t0 > 10:
                        print(f"  item {name} not listed after 10 s (counted as 10 s)")
                        lags.append(10_000)
                        break
                    await asyncio.sleep(0.002)
                # keep the trash small, so the listing measures the event path, not the list size
                await me.call("DELETE", f"/api/trash/items/{tombstone}")
        print(f"event lag (DELETE answered -> listed in GET /api/trash), {len(lags)} deletes: "
              f"p50 {statistics.median(lags):.1f} ms, p99 {pct(lags, 99):.1f} ms, max {max(lags):.1f} ms "
              f"(target p99 < 200 ms: {'met' if pct(lags, 99) < 200 else 'MISSED'})")
    await lag_breakdown(endpoints, answered, listed_at)


async def lag_breakdown(endpoints, answered: dict[str, float], listed_at: dict[str, float]) -> None:
    """Where the lag goes: answer -> file-deleted in Kafka (files' outbox relay; its Kafka
    timestamp is the producer's send time), -> handled by trash (processed_events.at, after
    the item was written), -> seen by the polling GET /api/trash."""
    from aiokafka import AIOKafkaConsumer
    topic = f"{endpoints.topic_prefix}files"
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=endpoints.kafka_bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    sent_at: dict[str, tuple[float, str]] = {}
    try:
        while True:  # everything the topic holds: until a poll brings nothing
            fetched = await consumer.getmany(timeout_ms=2000)
            if not fetched:
                break
            for messages in fetched.values():
                for m in messages:
                    if b'"file-deleted"' in m.value:
                        event = json.loads(m.value)
                        sent_at[event["data"]["tombstone_version_id"]] = (m.timestamp / 1000, event["id"])
    finally:
        await consumer.stop()
    mongo = AsyncMongoClient(endpoints.mongo_url, tz_aware=True)
    handled = {d["_id"]: d["at"].timestamp() async for d in
               mongo[f"{endpoints.db_prefix}trash"]["processed_events"].find({"type": "file-deleted"})}
    await mongo.close()
    relay, consume, seen = [], [], []
    for tombstone, t_answer in answered.items():
        if tombstone in sent_at and sent_at[tombstone][1] in handled and tombstone in listed_at:
            t_sent, event_id = sent_at[tombstone]
            relay.append((t_sent - t_answer) * 1000)
            consume.append((handled[event_id] - t_sent) * 1000)
            seen.append((listed_at[tombstone] - handled[event_id]) * 1000)
    for label, values in (("answer -> in Kafka (files' relay)", relay), ("in Kafka -> handled by trash", consume),
                          ("handled -> seen by the polling GET", seen)):
        if values:
            print(f"  {label}: p50 {statistics.median(values):.1f} ms, p99 {pct(values, 99):.1f} ms")


def cpu_seconds(state_dir: Path) -> dict[str, float]:
    """CPU seconds (user + system) each stack process and its children have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(stat.parent.name)] = (int(fields[2]), (int(fields[11]) + int(fields[12])) / ticks)  # group, cpu
    used = {}
    for pid_file in (state_dir / "run").glob("*.pid"):
        try:
            pid = json.loads(pid_file.read_text())["pid"]
        except (OSError, ValueError, KeyError):
            continue
        # each stack process leads a process group of its own (nginx's workers, Kafka's JVM)
        used[pid_file.stem] = sum(cpu for p, (group, cpu) in stats.items() if p == pid or group == pid)
    return used


def print_cpu(before: dict[str, float], after: dict[str, float], items: int) -> None:
    """Where the purge's CPU went: per process, per item, and the ceiling it sets here."""
    spent = {name: after[name] - before.get(name, 0) for name in after}
    total = sum(spent.values())
    if not total:
        print("  CPU during the purge: not measured (no process records in the state directory)")
        return
    parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1])
                      if seconds >= 0.05)
    per_item_ms = total / items * 1000
    cores = os.cpu_count() or 1
    print(f"  CPU during the purge: {total:.1f} s ({parts}) = {per_item_ms:.2f} ms per item; "
          f"{cores} cores: at most {cores * 1000 / per_item_ms:.0f} items/s at this cost per item")


async def purge_throughput(endpoints, items: int, timeout: float, state_dir: Path) -> None:
    mongo = AsyncMongoClient(endpoints.mongo_url, tz_aware=True)
    trash_db, files_db = mongo[f"{endpoints.db_prefix}trash"], mongo[f"{endpoints.db_prefix}files"]
    s3 = Minio(endpoints.s3_endpoint, access_key=endpoints.s3_access_key, secret_key=endpoints.s3_secret_key,
               secure=endpoints.s3_secure)
    users = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(10)]
    now = datetime.now(UTC)
    deleted_at = now - timedelta(days=1)
    t0 = time.perf_counter()
    trash_docs, versions, heads, blobs = [], [], [], []
    for n in range(items):
        user = users[n % len(users)]
        name = f"bench/{n}.osn"
        live, tomb = uuid.uuid4().hex, uuid.uuid4().hex
        ms = int(deleted_at.timestamp() * 1000)
        key = f"users/{user}/{live}"
        versions.append({"_id": live, "user_id": user, "type": "OSM_NOTES", "name": name, "blob_key": key,
                         "version_id": live, "size": 16, "checksum": None, "updated_ms": ms - 1000,
                         "client_ms": None, "device_id": None, "deleted": False, "created_at": deleted_at})
        versions.append({"_id": tomb, "user_id": user, "type": "OSM_NOTES", "name": name, "blob_key": None,
                         "version_id": tomb, "size": -1, "checksum": None, "updated_ms": ms, "client_ms": None,
                         "device_id": None, "deleted": True, "created_at": deleted_at})
        heads.append({"_id": f"{user}/OSM_NOTES/{name}", "user_id": user, "type": "OSM_NOTES", "name": name,
                      "category": "my_places", "head": {"version_id": tomb, "size": -1, "checksum": None,
                                                        "deleted": True, "updated_ms": ms, "client_ms": None,
                                                        "device_id": None}})
        trash_docs.append({"_id": tomb, "user_id": user, "type": "OSM_NOTES", "name": name, "category": "my_places",
                           "size": 16, "last_version_id": live, "deleted_at": deleted_at,
                           "expires_at": deleted_at + timedelta(days=30)})
        blobs.append(key)
    for coll, docs in ((files_db["versions"], versions), (files_db["heads"], heads), (trash_db["items"], trash_docs)):
        for i in range(0, len(docs), 5000):
            await coll.insert_many(docs[i:i + 5000], ordered=False)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(endpoints.s3_bucket, k, io.BytesIO(b"0123456789abcdef"), 16), blobs))
    print(f"seeded {items} expired items in {time.perf_counter() - t0:.1f} s, straight into the databases and the "
          f"bucket in bulk ({items} trash items, {2 * items} versions, {items} heads, {items} blobs of 16 bytes)")

    async def metric(service: str, name: str) -> float:
        """A service's own counter: watching through count queries would scan the collections
        (FerretDB has no usable index for them) and compete with the purge for the same CPU."""
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{endpoints.service_urls[service]}/metrics") as reply:
                text = await reply.text()
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))

    # before the clock moves, none is due: what each second of periodic purge rounds costs
    # with this many items waiting (a scan of the whole trash each round would show here)
    await asyncio.sleep(2)
    idle_before, idle_started = cpu_seconds(state_dir), time.perf_counter()
    await asyncio.sleep(5)
    idle_after, idle_seconds = cpu_seconds(state_dir), time.perf_counter() - idle_started
    print(f"  waiting, none due ({items} items in the trash, a purge round each second): CPU "
          + ", ".join(f"{name} {(idle_after[name] - idle_before.get(name, 0)) / idle_seconds * 1000:.0f} ms/s"
                      for name in ("trash", "ferretdb") if name in idle_after))

    trash_before = await metric("trash", 'trash_items_purged_total{reason="expired"}')
    files_before = await metric("files", "events_handled_total")
    cpu_before = cpu_seconds(state_dir)
    await set_shared_offset(mongo, timedelta(days=31))
    started = time.perf_counter()
    trash_done_at = None
    try:
        polls = 0
        while True:
            await asyncio.sleep(1)
            purged = await metric("trash", 'trash_items_purged_total{reason="expired"}') - trash_before
            applied = await metric("files", "events_handled_total") - files_before
            elapsed = time.perf_counter() - started
            if purged >= items and trash_done_at is None:
                trash_done_at = elapsed
            polls += 1
            if polls % 10 == 1:
                print(f"  {elapsed:6.1f} s: trash purged {purged:.0f}, files applied {applied:.0f} purge events")
            if purged >= items and applied >= items:
                break
            if elapsed > timeout:
                print(f"gave up after {timeout:.0f} s")
                break
        elapsed = time.perf_counter() - started
        cpu_after = cpu_seconds(state_dir)
        # once at the end, exactly: what is left of the seeded data
        left_items = await trash_db["items"].count_documents({"user_id": {"$in": users}})
        left_versions = await files_db["versions"].count_documents({"user_id": {"$in": users}})
        left_blobs = sum(1 for u in users for _ in s3.list_objects(endpoints.s3_bucket, prefix=f"users/{u}/",
                                                                   recursive=True))
        left_heads = await files_db["heads"].count_documents({"user_id": {"$in": users}})
        done = items - left_items
        print(f"purge of {items} expired items: {elapsed:.1f} s end to end, {done / elapsed:.0f} items/s "
              f"(trash alone: {trash_done_at or float('nan'):.1f} s, "
              f"{items / trash_done_at if trash_done_at else 0:.0f} items/s); left: "
              f"{left_items} items, {left_versions} versions, {left_heads} heads, {left_blobs} blobs "
              f"(target 100,000 in < 60 s = 1,667 items/s: ratio {done / elapsed / 1667:.2f}x, "
              f"{'met' if done == items and elapsed < 60 * items / 100_000 else 'MISSED'})")
        print_cpu(cpu_before, cpu_after, items)
    finally:
        await set_shared_offset(mongo, timedelta(0))
        await mongo.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--deletes", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--base-port", type=int, default=0, help="default: a free block")
    args = parser.parse_args()
    with own_stack("bench-trash", base_port=args.base_port or None, test_clock=True,
                   log=lambda m: print(f"[stack] {m}", file=sys.stderr)) as (stack, endpoints):
        print(f"local stack on base port {stack.config.base_port} (Kafka, FerretDB 1.24/SQLite, versitygw, "
              "4 services, nginx)")
        if args.deletes:
            await event_lag(endpoints, args.deletes)
        if args.items:
            await purge_throughput(endpoints, args.items, args.timeout, stack.state)

if __name__ == "__main__":
    asyncio.run(main())
