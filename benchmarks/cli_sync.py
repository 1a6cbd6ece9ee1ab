"""`osmcloud sync` against a local stack: many small files and one large track.

    .venv/bin/python benchmarks/cli_sync.py                    # starts its own stack, stops it at the end
    .venv/bin/python benchmarks/cli_sync.py --attach .state/up # a running `make up SANDBOX_STORE=1` stack

Two folders (two devices) on one Pro account; every step runs the installed `osmcloud`
command as a subprocess, as a person would, and is timed from the outside (wall time,
start-up included) with the client's peak RSS:
  1. 1,000 files of 10 KiB: upload from A, then download to B, then a sync with nothing to do;
  2. one 200 MiB track (GPX): upload from A, then download to B.
Pro comes from a sandbox-signed store receipt through billing's purchase API (the local
stack's default SANDBOX_RECEIPT_KEY), as the app's purchase flow would send it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from osmcloud_billing.receipts import sign_sandbox_receipt
from osmcloud_cli import config
from osmcloud_localstack.client import GatewayClient, eventually, login
from osmcloud_localstack.own_stack import attached_or_own

sys.path.insert(0, str(Path(__file__).resolve().parent))

OSMCLOUD = Path(sys.executable).parent / "osmcloud"
MIB = 1024 * 1024


async def pro_account(gateway_url: str, sink_url: str, sandbox_key: str, homes: list[Path]) -> None:
    """One account, a device (credentials file + folder) per home, Pro bought with a sandbox receipt."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        gateway = GatewayClient(session, gateway_url)
        email = f"bench-{uuid.uuid4().hex[:10]}@example.test"
        first, info = await login(gateway, sink_url, email)
        now = datetime.now(UTC)
        order = f"GPA.bench-{uuid.uuid4().hex[:8]}"
        receipt = sign_sandbox_receipt(sandbox_key, platform="sandbox", order_id=order,
                                       product_id="osmcloud.pro.monthly", purchased_at=now,
                                       expires_at=now + timedelta(days=30))
        reply = await first.call("POST", "/api/billing/purchases", json={
            "platform": "sandbox", "product_id": "osmcloud.pro.monthly", "order_id": order, "receipt": receipt})
        assert reply.status == 201, reply

        async def pro_known():
            return (await first.call("GET", "/api/files/usage")).body.get("plan") == "pro"
        await eventually(pro_known, timeout=60, what="files learning the Pro plan")
        sessions = [info]
        for _ in homes[1:]:
            # a second device: the shared test clock is not assumed, so wait out the 30 s code cooldown
            await asyncio.sleep(31)
            _, more = await login(gateway, sink_url, email)
            sessions.append(more)
        for home, s in zip(homes, sessions, strict=True):
            config.save(home / "config", config.Credentials(server=gateway_url, email=email, token=s["token"],
                                                            user_id=s["user_id"], device_id=s["device_id"],
                                                            folder=str(home / "OsmAnd")))


def osmcloud(home: Path, *args: str) -> tuple[float, dict, int]:
    """Runs the command; (wall seconds, its JSON, exit code)."""
    started = time.monotonic()
    done = subprocess.run([str(OSMCLOUD), "--config-dir", str(home / "config"), *args, "--json"],
                          capture_output=True, text=True, timeout=3600)
    seconds = time.monotonic() - started
    if done.returncode not in (0, 6):
        raise RuntimeError(f"osmcloud {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, json.loads(done.stdout), done.returncode


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(left, 4 * MIB))
            out.write(chunk)
            left -= len(chunk)


def run(gateway_url: str, sink_url: str, sandbox_key: str, args) -> int:
    work = Path(tempfile.mkdtemp(prefix="osmcloud-cli-bench-"))
    try:
        a, b = work / "a", work / "b"
        asyncio.run(pro_account(gateway_url, sink_url, sandbox_key, [a, b]))
        rows = []

        # 1. many small files
        for i in range(args.small_count):
            write_random(a / "OsmAnd" / "tracks" / f"day{i // 100:02d}" / f"track{i:04d}.gpx", args.small_kib * 1024)
        seconds, up, _ = osmcloud(a, "sync")
        assert up["uploaded"] == args.small_count and not up["failed"], up
        rows.append((f"{args.small_count} x {args.small_kib} KiB: upload (A)", seconds, up["seconds"],
                     args.small_count / seconds))
        seconds, down, _ = osmcloud(b, "sync")
        assert down["downloaded"] == args.small_count, down
        rows.append((f"{args.small_count} x {args.small_kib} KiB: download (B)", seconds, down["seconds"],
                     args.small_count / seconds))
        seconds, idle, _ = osmcloud(a, "sync")
        assert idle["uploaded"] == idle["downloaded"] == 0, idle
        rows.append((f"sync with nothing to do ({args.small_count} files known)", seconds, idle["seconds"], None))

        # 2. one large track
        big = a / "OsmAnd" / "tracks" / "big" / "long-ride.gpx"
        write_random(big, args.big_mib * MIB)
        seconds, up, _ = osmcloud(a, "sync")
        assert up["uploaded"] == 1 and up["bytes_up"] == args.big_mib * MIB, up
        rows.append((f"one {args.big_mib} MiB track: upload (A)", seconds, up["seconds"], args.big_mib / seconds))
        seconds, down, _ = osmcloud(b, "sync")
        assert down["downloaded"] == 1 and down["bytes_down"] == args.big_mib * MIB, down
        rows.append((f"one {args.big_mib} MiB track: download (B)", seconds, down["seconds"], args.big_mib / seconds))
        copy = b / "OsmAnd" / "tracks" / "big" / "long-ride.gpx"
        assert copy.stat().st_size == big.stat().st_size

        print(f"\n{'step':55} {'wall s':>8} {'sync s':>8} {'rate':>12}")
        for what, wall, inner, rate in rows:
            unit = "" if rate is None else (f"{rate:8.1f} MiB/s" if "MiB" in what else f"{rate:7.1f} files/s")
            print(f"{what:55} {wall:8.2f} {inner:8.2f} {unit:>12}")
        print(f"peak RSS of an osmcloud process: {peak_rss_mib():.0f} MiB")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attach", metavar="STATE_DIR", help="use the running stack of this state directory")
    parser.add_argument("--small-count", type=int, default=1000)
    parser.add_argument("--small-kib", type=int, default=10)
    parser.add_argument("--big-mib", type=int, default=200)
    args = parser.parse_args()
    with attached_or_own(args.attach, "bench-cli-sync", sandbox_store=True) as (_, endpoints):
        if not endpoints.sandbox_receipt_key:
            raise SystemExit("the stack runs no sandbox store: start it with `make up SANDBOX_STORE=1`")
        return run(endpoints.gateway_url, endpoints.smtp_sink_url, endpoints.sandbox_receipt_key, args)

if __name__ == "__main__":
    sys.exit(main())
