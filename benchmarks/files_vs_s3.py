"""Files through the gateway against direct S3, measured in one run against the same S3 server.

    .venv/bin/python benchmarks/files_vs_s3.py              # starts its own stack, stops it at the end
    .venv/bin/python benchmarks/files_vs_s3.py --attach .state/up   # use a running stack instead

What it measures (targets from the files issue):
  1. 64 MiB uploads and downloads through the gateway vs direct minio PUTs / presigned GETs of
     the same bytes, the median of --repeat (5) interleaved rounds after a warm-up (target >= 0.9x
     each way), with the CPU each process spends per transfer;
  2. 1,000 uploads of 10 KiB by 16 concurrent clients vs 1,000 direct small PUTs with 16
     threads (target >= 0.2x), and the CPU all the stack's processes spend per upload
     (target <= 8 ms; printed per process too);
  3. peak RSS growth of the files process while a 1 GiB file streams up and back down
     (target < 64 MiB).

Each ratio is printed with its target; the exit status is 1 when any target is missed.

The user needs a quota big enough for this, and billing cannot sell Pro yet: the benchmark
publishes a `subscription-activated` event with billing's Pro entitlement for its user straight
to the billing topic (benchmark-only; it says so in its output).
"""

from __future__ import annotations

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
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaProducer
from minio import Minio

from osmcloud_billing.plans import pro_entitlement
from osmcloud_billing.settings import BillingSettings
from osmcloud_common.events import SubscriptionActivated, make_event
from osmcloud_localstack.client import GatewayClient, eventually, login
from osmcloud_localstack.own_stack import attached_or_own
from osmcloud_localstack.rss import RssSampler, process_id

MIB = 1024 * 1024
SMALL_RATIO = 0.2        # one file per request, as the OsmAnd app uploads (issue 18 point 1)
SMALL_CPU_MS = 8.0       # CPU per small upload, all processes of the stack together
BIG_RATIO = 0.9          # 64 MiB up and down through the gateway vs direct S3 (issue 18 point 4)


def cpu_seconds(state: Path) -> dict[str, float]:
    """CPU time (user + system) used so far by each process of a stack (from its PID files),
    with its children's that have no PID file of their own (nginx's workers are the gateway's),
    and by this benchmark's own process ("client")."""
    ticks = os.sysconf("SC_CLK_TCK")
    pids = {}
    for pid_file in (state / "run").glob("*.pid"):
        try:
            pids[pid_file.stem] = json.loads(pid_file.read_text())["pid"]
        except (OSError, ValueError, KeyError):
            continue
    found = {"client": time.process_time()}
    for name, pid in pids.items():
        try:
            found[name] = sum(_own_ticks(p) for p in _tree(pid, set(pids.values()) - {pid})) / ticks
        except OSError:
            continue
    return found


def _tree(pid: int, others: set[int]) -> list[int]:
    """A process and its descendants, leaving out those in `others` (and theirs)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if int(child) not in others:
                pids += _tree(int(child), others)
    return pids


def _own_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # gone meanwhile
        return 0
    return int(fields[11]) + int(fields[12])


def ratio(ours: float, direct: float) -> str:
    return f"{ours / direct:.2f}x" if direct else "n/a"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def target_line(value: float, target: float) -> tuple[bool, str]:
    """Whether a ratio (higher is better) meets its target, and how to print the two."""
    ok = value >= target
    return ok, f"ratio {value:.2f}x (target >= {target:g}x: {verdict(ok)})"


async def grant_pro(endpoints, user_id: str) -> None:
    """Benchmark-only: billing has no purchase yet, so say 'Pro' on billing's topic directly."""
    entitlement = pro_entitlement(BillingSettings())
    event = make_event(SubscriptionActivated(entitlement=entitlement), user_id=user_id, producer="benchmark",
                       occurred_at=__import__("datetime").datetime.now(__import__("datetime").UTC))
    producer = AIOKafkaProducer(bootstrap_servers=endpoints["kafka_bootstrap"])
    await producer.start()
    try:
        await producer.send_and_wait(f"{endpoints['topic_prefix']}billing", value=event.to_json().encode(),
                                     key=user_id.encode(), headers=[("event_id", event.id.encode())])
    finally:
        await producer.stop()


async def timed_upload(me: GatewayClient, path: str, body, headers: dict | None = None) -> float:
    started = time.perf_counter()
    reply = await me.call("PUT", path, data=body, headers=headers, params={"overwrite": "true"})
    elapsed = time.perf_counter() - started
    assert reply.status == 201, reply
    return elapsed


async def timed_download(session: aiohttp.ClientSession, url: str, token: str | None, expect: int) -> float:
    started = time.perf_counter()
    got = 0
    async with session.get(url, headers={"Authorization": f"Bearer {token}"} if token else None) as response:
        assert response.status == 200, response.status
        async for chunk in response.content.iter_chunked(1 * MIB):
            got += len(chunk)
    assert got == expect, (got, expect)
    return time.perf_counter() - started


def pieces(body: bytes, size: int = MIB):
    """A body as an async source of `size` pieces (views: no copy)."""
    async def source():
        view = memoryview(body)
        for start in range(0, len(body), size):
            yield view[start:start + size]
    return source()


def median(values: list[float]) -> float:
    return statistics.median(values)


async def run(endpoints: dict, files_pid: int, args) -> int:
    s3 = Minio(endpoints["s3_endpoint"], access_key=endpoints["s3_access_key"],
               secret_key=endpoints["s3_secret_key"], secure=endpoints["s3_secure"])
    bench = Bench(args, s3, endpoints["s3_bucket"], ThreadPoolExecutor(max_workers=args.concurrency), files_pid,
                  Path(endpoints["state_dir"]))
    connector = aiohttp.TCPConnector(limit=args.concurrency * 2)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=3600)) as session:
        gateway = GatewayClient(session, endpoints["gateway_url"])
        me, account = await login(gateway, endpoints["smtp_sink_url"])
        user_id = account["user_id"]
        print(f"user {user_id}; granting Pro by publishing subscription-activated to "
              f"{endpoints['topic_prefix']}billing (BENCHMARK ONLY: billing sells no Pro yet)")
        await grant_pro(endpoints, user_id)

        async def pro_known():
            return (await me.call("GET", "/api/files/usage")).body.get("plan") == "pro"
        await eventually(pro_known, timeout=60, what="files learning the Pro entitlement")
        bench.me, bench.session = me, session
        missed = 0
        if args.only in (None, "big"):
            missed += await bench.big_files()
        if args.only in (None, "small"):
            missed += await bench.small_files()
        if args.only in (None, "rss"):
            missed += await bench.streaming_memory()
        reply = await me.call("DELETE", "/api/files")  # "delete all my data" cleans up after the run
        assert reply.status == 200, reply
    print(f"\n{'all targets met' if not missed else f'{missed} target(s) missed'}")
    return 1 if missed else 0


class Bench:
    def __init__(self, args, s3: Minio, bucket: str, pool: ThreadPoolExecutor, files_pid: int, state: Path) -> None:
        self.args, self.s3, self.bucket, self.pool, self.files_pid = args, s3, bucket, pool, files_pid
        self.state = state
        self.me: GatewayClient | None = None
        self.session: aiohttp.ClientSession | None = None

    async def _in_thread(self, fn, *a):
        return await asyncio.get_running_loop().run_in_executor(self.pool, lambda: fn(*a))

    async def big_files(self) -> int:
        """[1] a big body up and down, through the gateway and straight to S3: `repeat` rounds
        after one unmeasured warm-up, each round's four transfers interleaved (the order of
        gateway and direct flips every round, so neither always runs first on a warm cache)."""
        args, me = self.args, self.me
        big = os.urandom(args.big_mib * MIB)
        path = "/api/files/FILE/bench/big.bin"
        url = f"{me.base}{path}"
        times: dict[str, list[float]] = {"ours_up": [], "direct_up": [], "ours_down": [], "direct_down": []}
        cpu: dict[str, dict[str, float]] = {name: {} for name in times}
        key = f"bench/{uuid.uuid4().hex}"

        async def direct_up() -> float:
            t = time.perf_counter()
            await self._in_thread(self.s3.put_object, self.bucket, key, io.BytesIO(big), len(big))
            return time.perf_counter() - t

        async def direct_down() -> float:
            # the same client as ours (aiohttp, 1 MiB chunks), on a presigned URL made beforehand
            presigned = await self._in_thread(self.s3.presigned_get_object, self.bucket, key)
            return await timed_download(me.session, presigned, None, len(big))

        async def ours_up() -> float:
            # streamed in 1 MiB pieces, as a client sends a file: given 64 MiB of bytes at once,
            # aiohttp (on Python 3.11) joins them with the headers into a new buffer that the
            # socket transport copies again, ~2x the client CPU of the direct PUT's sending
            return await timed_upload(me, path, pieces(big), headers={"Content-Length": str(len(big))})

        async def ours_down() -> float:
            return await timed_download(me.session, url, me.token, len(big))

        steps = {"direct_up": direct_up, "ours_up": ours_up, "direct_down": direct_down, "ours_down": ours_down}
        for round_ in range(args.repeat + 1):
            flip = round_ % 2 == 1
            for name in (("ours_up", "direct_up", "ours_down", "direct_down") if flip else
                         ("direct_up", "ours_up", "direct_down", "ours_down")):
                before = cpu_seconds(self.state)
                elapsed = await steps[name]()
                after = cpu_seconds(self.state)
                if round_:  # round 0 warms up: connections, the file's head, S3's first object
                    times[name].append(elapsed)
                    for proc, spent in after.items():
                        cpu[name][proc] = cpu[name].get(proc, 0.0) + spent - before.get(proc, 0.0)
        await self._in_thread(self.s3.remove_object, self.bucket, key)
        mb, n = args.big_mib, args.repeat
        print(f"\n[1] {mb} MiB, median of {n} (after a warm-up round; transfers interleaved):")
        missed = 0
        for way in ("up", "down"):
            ours, direct = median(times[f"ours_{way}"]), median(times[f"direct_{way}"])
            ok, line = target_line(direct / ours, BIG_RATIO)
            missed += not ok
            label = "upload  " if way == "up" else "download"
            print(f"    {label} gateway {mb / ours:8.1f} MiB/s ({ours * 1000:.0f} ms)   direct S3 "
                  f"{mb / direct:8.1f} MiB/s ({direct * 1000:.0f} ms)   {line}")
            for who in ("ours", "direct"):
                spent = cpu[f"{who}_{way}"]
                print(f"      CPU per transfer, {'gateway' if who == 'ours' else 'direct '}: " + ", ".join(
                    f"{proc} {ms * 1000 / n:.0f} ms" for proc, ms in sorted(spent.items(), key=lambda kv: -kv[1])
                    if ms * 1000 / n >= 0.5))
        return missed

    async def small_files(self) -> int:
        """[2] many small new files by concurrent clients, and as many direct small PUTs."""
        args, me = self.args, self.me
        small = os.urandom(args.small_kib * 1024)
        n, c, warm = args.small_count, args.concurrency, args.small_warmup

        async def direct(names: range) -> None:
            await asyncio.gather(*(self._in_thread(self.s3.put_object, self.bucket, f"bench/small/{i}",
                                                   io.BytesIO(small), len(small)) for i in names))

        latencies: list[float] = []

        async def ours(names: range) -> None:
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in names:
                queue.put_nowait(i)

            async def client() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    latencies.append(await timed_upload(me, f"/api/files/FILE/bench/small/{i}.bin", small))
            await asyncio.gather(*(client() for _ in range(c)))

        # unmeasured first: the JVM (Kafka) compiles its hot paths in the first seconds of load,
        # which a running service has long done
        await direct(range(n, n + warm))
        await ours(range(n, n + warm))
        latencies.clear()
        t = time.perf_counter()
        await direct(range(n))
        direct_rate = n / (time.perf_counter() - t)
        cpu_before = cpu_seconds(self.state)
        t = time.perf_counter()
        await ours(range(n))
        ours_rate = n / (time.perf_counter() - t)
        cpu_after = cpu_seconds(self.state)
        latencies.sort()
        small_ratio = ours_rate / direct_rate
        print(f"\n[2] {n} uploads of {args.small_kib} KiB, {c} concurrent clients:")
        print(f"    gateway {ours_rate:8.1f} uploads/s (p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
              f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.0f} ms)   direct S3 {direct_rate:8.1f} PUTs/s"
              f"   ratio {small_ratio:.2f}x (target >= {SMALL_RATIO}x: {verdict(small_ratio >= SMALL_RATIO)})")
        spent = {name: (cpu_after[name] - cpu_before.get(name, 0)) * 1000 / n for name in cpu_after}
        total = sum(spent.values())
        print(f"    CPU per upload through the gateway {total:.1f} ms (target <= {SMALL_CPU_MS:g} ms: "
              f"{verdict(total <= SMALL_CPU_MS)}): " + ", ".join(
                  f"{name} {ms:.1f}" for name, ms in sorted(spent.items(), key=lambda kv: -kv[1]) if ms >= 0.05))
        await self._in_thread(lambda: [self.s3.remove_object(self.bucket, f"bench/small/{i}") for i in range(n + warm)])
        return (small_ratio < SMALL_RATIO) + (total > SMALL_CPU_MS)

    async def streaming_memory(self) -> int:
        """[3] the files process's resident memory while a big body streams up and down."""
        args, me = self.args, self.me
        total = args.rss_mib * MIB
        block = os.urandom(1 * MIB)

        async def generate():
            for _ in range(args.rss_mib):
                yield block
        with RssSampler(self.files_pid, every=0.02) as up_rss:
            elapsed_up = await timed_upload(me, "/api/files/FILE/bench/huge.bin", generate(),
                                            headers={"Content-Length": str(total)})
        with RssSampler(self.files_pid, every=0.02) as down_rss:
            elapsed_down = await timed_download(me.session, f"{me.base}/api/files/FILE/bench/huge.bin",
                                                me.token, total)
        worst = max(up_rss.growth, down_rss.growth)
        print(f"\n[3] {args.rss_mib} MiB streamed through files (pid {self.files_pid}, baseline RSS "
              f"{up_rss.baseline / MIB:.0f} MiB):")
        print(f"    upload   {args.rss_mib / elapsed_up:8.1f} MiB/s, peak RSS growth {up_rss.growth / MIB:6.1f} MiB")
        print(f"    download {args.rss_mib / elapsed_down:8.1f} MiB/s, "
              f"peak RSS growth {down_rss.growth / MIB:6.1f} MiB")
        print(f"    worst growth {worst / MIB:.1f} MiB (target < 64 MiB: {verdict(worst < 64 * MIB)})")
        return worst >= 64 * MIB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attach", metavar="STATE_DIR", help="use the running stack of this state directory")
    parser.add_argument("--repeat", type=int, default=5, help="measured rounds of the big transfers")
    parser.add_argument("--big-mib", type=int, default=64)
    parser.add_argument("--small-count", type=int, default=1000)
    parser.add_argument("--small-kib", type=int, default=10)
    parser.add_argument("--small-warmup", type=int, default=300,
                        help="small uploads (and PUTs) before the measured ones")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rss-mib", type=int, default=1024)
    parser.add_argument("--only", choices=["big", "small", "rss"], help="run one part only (for profiling)")
    args = parser.parse_args()

    with attached_or_own(args.attach, "bench-files-vs-s3") as (stack, endpoints):
        files_pid = process_id(stack.state, "files")
        return asyncio.run(run(endpoints.as_dict(), files_pid, args))

if __name__ == "__main__":
    sys.exit(main())
