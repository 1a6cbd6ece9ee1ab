"""The operator's account export (`osmcloud-admin export`) end to end, through the real stack.

    .venv/bin/python benchmarks/export_account.py                      # 1 GiB in 256 files, a stack of its own
    .venv/bin/python benchmarks/export_account.py --size-mib 64 --files 16
    .venv/bin/python benchmarks/export_account.py --attach .state/up   # a running stack with the admin API

One user signs up by mailed code; the operator grants it Pro (admin API) and it uploads
SIZE_MIB of random bytes (nothing compresses) in FILES files with CONCURRENCY clients through
the native API, each file's SHA-256 kept. Then, in one run against the same stack:
  1. a plain download of every file through the gateway, CONCURRENCY at a time, each read to
     the end and hashed (the reference speed for the same bytes);
  2. the export of the newest versions (GET /admin/api/files/accounts/<id>/export) streamed
     through the gateway into a temporary file, while a thread samples the files process's
     VmRSS every 100 ms; then the zip is checked: every entry's SHA-256 (and the zip's CRC)
     equals what was uploaded, and the manifest lists every file with that checksum.
Printed: export seconds, MiB/s, zip bytes, the speed as a ratio to the plain download, and the
files process's RSS growth (target < 64 MiB: the export streams, memory stays flat). Exit
status 1 when the RSS target or the content check fails. The temporary zip is deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import aiohttp

from osmcloud_localstack.client import GatewayClient, login
from osmcloud_localstack.own_stack import attached_or_own
from osmcloud_localstack.rss import RssSampler, process_id

MIB = 1024 * 1024
RSS_TARGET = 64 * MIB
FILE_TYPE = "FILE"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


async def bounded(concurrency: int, jobs: list) -> None:
    """Runs the coroutine factories in `jobs`, at most `concurrency` at a time."""
    queue: asyncio.Queue = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        while not queue.empty():
            await queue.get_nowait()()
    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def upload_all(me: GatewayClient, args: argparse.Namespace) -> dict[str, str]:
    """FILES files of random bytes; {name: sha256 hex}. Each body lives only while it is sent."""
    per_file = args.size_mib * MIB // args.files
    sums: dict[str, str] = {}

    def job(i: int):
        async def put() -> None:
            name = f"export-bench/{i:05d}.bin"
            body = os.urandom(per_file)
            sums[name] = hashlib.sha256(body).hexdigest()
            reply = await me.call("PUT", f"/api/files/{FILE_TYPE}/{name}", data=body)
            if reply.status != 201:
                raise RuntimeError(f"upload of {name} refused: {reply.status} {reply.body!r}"[:500])
        return put
    await bounded(args.concurrency, [job(i) for i in range(args.files)])
    return sums


async def download_all(me: GatewayClient, sums: dict[str, str], concurrency: int) -> tuple[float, int, int]:
    """Every file through the gateway, read to the end and hashed: (seconds, bytes, wrong sums)."""
    got = wrong = 0

    def job(name: str):
        async def get() -> None:
            nonlocal got, wrong
            digest = hashlib.sha256()
            async with me.session.get(f"{me.base}/api/files/{FILE_TYPE}/{name}",
                                      headers={"Authorization": f"Bearer {me.token}"}) as response:
                if response.status != 200:
                    raise RuntimeError(f"download of {name}: {response.status}")
                async for chunk in response.content.iter_chunked(MIB):
                    digest.update(chunk)
                    got += len(chunk)
            wrong += digest.hexdigest() != sums[name]
        return get
    started = time.perf_counter()
    await bounded(concurrency, [job(name) for name in sums])
    return time.perf_counter() - started, got, wrong


async def export_to(operator: GatewayClient, user_id: str, target: Path) -> tuple[float, int]:
    """The export streamed into `target`: (seconds, zip bytes)."""
    written = 0
    started = time.perf_counter()
    async with operator.session.get(f"{operator.base}/admin/api/files/accounts/{user_id}/export",
                                    params={"versions": "newest"},
                                    headers={"Authorization": f"Bearer {operator.token}"}) as response:
        if response.status != 200:
            raise RuntimeError(f"export refused: {response.status} {(await response.read())[:500]!r}")
        with target.open("wb") as sink:
            async for chunk in response.content.iter_chunked(MIB):
                sink.write(chunk)
                written += len(chunk)
    return time.perf_counter() - started, written


def check_zip(path: Path, sums: dict[str, str]) -> list[str]:
    """What is wrong with the exported zip against what was uploaded (empty: all is right)."""
    problems: list[str] = []
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        listed = {entry["name"]: entry for entry in manifest["files"]}
        if set(listed) != set(sums):
            problems.append(f"manifest lists {len(listed)} files, {len(set(sums) - set(listed))} uploaded ones "
                            f"missing, {len(set(listed) - set(sums))} unknown")
        members = set(archive.namelist()) - {"manifest.json"}
        if len(members) != len(sums):
            problems.append(f"{len(members)} file entries in the zip for {len(sums)} files uploaded")
        for name, expected in sums.items():
            entry = listed.get(name)
            if entry is None:
                continue
            if entry.get("checksum") != f"sha256:{expected}":
                problems.append(f"{name}: manifest checksum {entry.get('checksum')} is not the uploaded sha256")
            digest = hashlib.sha256()
            try:
                with archive.open(entry["path"]) as member:  # zipfile checks the CRC at the end
                    while chunk := member.read(MIB):
                        digest.update(chunk)
            except (KeyError, zipfile.BadZipFile) as exc:
                problems.append(f"{name}: {exc}")
                continue
            if digest.hexdigest() != expected:
                problems.append(f"{name}: the zip's content is not what was uploaded")
    return problems


async def run(endpoints: dict, files_pid: int, args: argparse.Namespace) -> int:
    if not endpoints["operator_token"]:
        print("this stack runs no admin API (start it with `osmcloud-stack up --admin-api`)")
        return 2
    timeout = aiohttp.ClientTimeout(total=args.timeout, sock_read=120)
    connector = aiohttp.TCPConnector(limit=args.concurrency * 2)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        gateway = GatewayClient(session, endpoints["gateway_url"])
        operator = gateway.with_token(endpoints["operator_token"])
        me, account = await login(gateway, endpoints["smtp_sink_url"])
        user_id = account["user_id"]
        granted = await operator.call("PUT", f"/admin/api/billing/accounts/{user_id}/plan", json={"plan": "pro"})
        if granted.status != 200:
            raise RuntimeError(f"granting Pro refused: {granted.status} {granted.body!r}")
        quota = await operator.call("PUT", f"/admin/api/billing/accounts/{user_id}/overrides",
                                    json={"quota_bytes": (args.size_mib + 64) * MIB * 2, "max_files": None})
        if quota.status != 200:
            raise RuntimeError(f"the quota override refused: {quota.status} {quota.body!r}")

        started = time.perf_counter()
        sums = await upload_all(me, args)
        took = time.perf_counter() - started
        total = args.size_mib * MIB // args.files * args.files
        print(f"user {user_id}: {len(sums)} files, {total / MIB:.0f} MiB uploaded in {took:.1f} s "
              f"({total / MIB / took:.1f} MiB/s, {args.concurrency} concurrent)")

        plain_s, plain_bytes, plain_wrong = await download_all(me, sums, args.concurrency)
        print(f"plain download: {plain_bytes / MIB:.0f} MiB in {plain_s:.2f} s "
              f"({plain_bytes / MIB / plain_s:.1f} MiB/s, {args.concurrency} concurrent)"
              f"{'' if not plain_wrong else f', {plain_wrong} WRONG checksums'}")

        with tempfile.TemporaryDirectory(prefix="osmcloud-export-bench-") as work:
            target = Path(work) / "export.zip"
            with RssSampler(files_pid, every=0.1) as rss:
                export_s, zip_bytes = await export_to(operator, user_id, target)
            problems = await asyncio.to_thread(check_zip, target, sums)

        await me.call("DELETE", "/api/files")  # the user's data goes; the stack is removed anyway
    rate = total / MIB / export_s
    ratio = rate / (plain_bytes / MIB / plain_s)
    rss_ok = rss.growth < RSS_TARGET
    content_ok = not problems and plain_bytes == total and not plain_wrong
    print(f"\nexport of {len(sums)} files ({total / MIB:.0f} MiB), newest versions, through the gateway:")
    print(f"  time        {export_s:8.2f} s")
    print(f"  speed       {rate:8.1f} MiB/s of content; {ratio:.2f}x the plain download's "
          f"{plain_bytes / MIB / plain_s:.1f} MiB/s (one stream vs {args.concurrency}; no target)")
    print(f"  zip         {zip_bytes:,} bytes ({zip_bytes - total:,} over the content)")
    print(f"  files RSS   +{rss.growth / MIB:.1f} MiB (baseline {rss.baseline / MIB:.0f} MiB, peak "
          f"{rss.peak / MIB:.0f} MiB, pid {files_pid}; target < {RSS_TARGET // MIB} MiB: {verdict(rss_ok)})")
    print("              peak growth by the end of each quarter of the export: "
          + ", ".join(f"+{g / MIB:.1f}" for g in rss.growth_by_quarter()) + f" MiB ({len(rss.samples)} samples)")
    print(f"  content     {'every entry and the manifest match the upload' if content_ok else 'WRONG'}")
    for problem in problems[:20]:
        print(f"    {problem}")
    return 0 if rss_ok and content_ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attach", metavar="STATE_DIR", help="use the running stack of this state directory "
                        "(it must run the admin API)")
    parser.add_argument("--size-mib", type=int, default=1024, help="the account's size (default 1024)")
    parser.add_argument("--files", type=int, default=256, help="in how many files (default 256: 4 MiB each)")
    parser.add_argument("--concurrency", type=int, default=8, help="clients uploading and downloading (default 8)")
    parser.add_argument("--timeout", type=float, default=1800, help="the most seconds one request may take "
                        "(the export is one request; default 1800)")
    args = parser.parse_args()
    if args.files < 1 or args.size_mib < 1 or args.concurrency < 1 or args.size_mib * MIB < args.files:
        parser.error("--size-mib, --files and --concurrency are positive, and a file holds at least a byte")
    with attached_or_own(args.attach, "bench-export", admin_api=True) as (stack, endpoints):
        files_pid = process_id(stack.state, "files")
        return asyncio.run(run(endpoints.as_dict(), files_pid, args))


if __name__ == "__main__":
    sys.exit(main())
