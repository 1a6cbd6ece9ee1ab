"""Bulk upload through the gateway against direct S3 PUTs, one client each, in one run against
the same S3 server (issue 18 point 2; docs/bulk-upload.md).

    .venv/bin/python benchmarks/bulk_upload.py              # starts its own stack, stops it at the end
    .venv/bin/python benchmarks/bulk_upload.py --attach .state/up   # use a running stack instead

It uploads N files of K KiB (default 1,000 × 10 KiB) as new files with POST /api/files/bulk,
`--per-request` files per request (default 1,000, the default BULK_MAX_FILES), requests one
after the other from one client; and as many direct PUTs of the same bytes to S3, one after the
other from one client (minio). It prints both rates, the ratio against the 0.5× target and the
CPU all the stack's processes spent per file, and exits non-zero when the target is missed.

The user gets Pro the way files_vs_s3.py gives it (subscription-activated published to the
billing topic: benchmark-only).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import time
import uuid
from pathlib import Path

import aiohttp
from files_vs_s3 import cpu_seconds, grant_pro, verdict
from minio import Minio

from osmcloud_localstack.client import GatewayClient, bulk_body, eventually, login
from osmcloud_localstack.own_stack import attached_or_own

TARGET = 0.5  # bulk uploads per second / direct S3 PUTs per second, one client each


async def run(endpoints: dict, args) -> int:
    s3 = Minio(endpoints["s3_endpoint"], access_key=endpoints["s3_access_key"],
               secret_key=endpoints["s3_secret_key"], secure=endpoints["s3_secure"])
    bucket, state = endpoints["s3_bucket"], Path(endpoints["state_dir"])
    n, size = args.count, args.kib * 1024
    data = [os.urandom(size) for _ in range(n)]

    def direct() -> float:
        keys = [f"bench/bulk/{uuid.uuid4().hex}" for _ in range(n)]
        started = time.perf_counter()
        for key, body in zip(keys, data, strict=True):
            s3.put_object(bucket, key, io.BytesIO(body), len(body))
        elapsed = time.perf_counter() - started
        for key in keys:
            s3.remove_object(bucket, key)
        return n / elapsed

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
        gateway = GatewayClient(session, endpoints["gateway_url"])
        me, account = await login(gateway, endpoints["smtp_sink_url"])
        print(f"user {account['user_id']}; granting Pro by publishing subscription-activated to "
              f"{endpoints['topic_prefix']}billing (BENCHMARK ONLY: billing sells no Pro yet)")
        await grant_pro(endpoints, account["user_id"])

        async def pro_known():
            return (await me.call("GET", "/api/files/usage")).body.get("plan") == "pro"
        await eventually(pro_known, timeout=60, what="files learning the Pro entitlement")

        direct_rate = await asyncio.to_thread(direct)
        tag = uuid.uuid4().hex[:8]
        cpu_before = cpu_seconds(state)
        started = time.perf_counter()
        stored = 0
        for first in range(0, n, args.per_request):
            body, content_type = bulk_body(
                (f"FILE/bench/bulk-{tag}/{i}.bin", data[i], {"X-File-Size": str(size)})
                for i in range(first, min(n, first + args.per_request)))
            reply = await me.call("POST", "/api/files/bulk", data=body, headers={"Content-Type": content_type})
            assert reply.status == 200, reply
            stored += reply.body["stored"]
        ours_rate = n / (time.perf_counter() - started)
        cpu_after = cpu_seconds(state)
        assert stored == n, f"{stored} of {n} files stored"
        listed = (await me.call("GET", "/api/files", params={"types": "FILE"})).body["files"]
        assert len(listed) == n, len(listed)  # read-your-writes: every file listed at once

        ratio = ours_rate / direct_rate
        spent = {name: (cpu_after[name] - cpu_before.get(name, 0)) * 1000 / n for name in cpu_after}
        total = sum(spent.values())
        print(f"\n{n} files of {args.kib} KiB, one client, {args.per_request} files per bulk request:")
        print(f"    bulk through the gateway {ours_rate:8.1f} files/s   direct S3 {direct_rate:8.1f} PUTs/s "
              f"(one client, one after the other)   ratio {ratio:.2f}x "
              f"(target >= {TARGET}x: {verdict(ratio >= TARGET)})")
        print(f"    CPU per file, all processes of the stack: {total:.1f} ms: " + ", ".join(
            f"{name} {ms:.1f}" for name, ms in sorted(spent.items(), key=lambda kv: -kv[1]) if ms >= 0.05))
        reply = await me.call("DELETE", "/api/files")  # "delete all my data" cleans up after the run
        assert reply.status == 200, reply
    return 0 if ratio >= TARGET else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attach", metavar="STATE_DIR", help="use the running stack of this state directory")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--kib", type=int, default=10)
    parser.add_argument("--per-request", type=int, default=1000)
    args = parser.parse_args()
    with attached_or_own(args.attach, "bench-bulk-upload") as (_, endpoints):
        return asyncio.run(run(endpoints.as_dict(), args))


if __name__ == "__main__":
    sys.exit(main())
