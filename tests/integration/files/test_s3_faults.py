"""S3 away: an upload fails cleanly with 503 JSON and leaves no version, no blob and no
reservation; reads that need no blob keep working; when S3 is back the next upload succeeds,
without restarting anything."""

import asyncio
import contextlib
import os
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from osmcloud_localstack import paths
from osmcloud_localstack.readiness import http_ok
from osmcloud_localstack.stack import versitygw_metadata_args
from osmcloud_localstack.testing import CannotControl, free_port, service_replica

MIB = 1024 * 1024
KEPT = b"stored before S3 went away"


async def test_s3_down_upload_is_refused_cleanly_and_the_next_one_after_it_returns_succeeds(supervised_stack, files):
    stack = supervised_stack
    me, session = await files.start_user()
    user = session["user_id"]
    assert (await me.call("PUT", "/api/files/OSM_NOTES/kept.osn", data=KEPT)).status == 201
    await files.quiet(user)
    files_pid = stack.process_info("files")["pid"]

    try:
        await asyncio.to_thread(stack.stop_service, "versitygw")
    except CannotControl as exc:  # mode testcontainers: S3 is a container (mode local covers this)
        pytest.skip(str(exc))
    try:
        started = time.monotonic()
        refused = await me.call("PUT", "/api/files/OSM_NOTES/lost.osn", data=b"x" * 200_000)
        took = time.monotonic() - started
        assert refused.status == 503, refused
        assert refused.body["error"]["code"] == "unavailable" and "blob store" in refused.body["error"]["message"]
        assert refused.headers["Retry-After"] == "5"
        assert took < 15, f"the refusal took {took:.1f} s"
        # nothing of it is left: no version, the reservation released, usage as before
        assert [v["name"] for v in await files.versions(user)] == ["kept.osn"]
        await files.assert_nothing_held(user, used_bytes=len(KEPT), file_count=1)
        # reads that need no blob keep working
        listing = await me.call("GET", "/api/files")
        assert listing.status == 200 and [f["name"] for f in listing.body["files"]] == ["kept.osn"]
        usage = await me.call("GET", "/api/files/usage")
        assert usage.status == 200 and usage.body["used_bytes"] == len(KEPT)
        # a download needs S3: 503 JSON, not a hang
        download = await me.call("GET", "/api/files/OSM_NOTES/kept.osn")
        assert download.status == 503 and download.body["error"]["code"] == "unavailable", download
    finally:
        await asyncio.to_thread(stack.start_service, "versitygw")

    # S3 is back: the next calls succeed, and files was not restarted for it
    stored = await me.call("PUT", "/api/files/OSM_NOTES/lost.osn", data=b"y" * 200_000)
    assert stored.status == 201, stored
    read = await me.call("GET", "/api/files/OSM_NOTES/kept.osn")
    assert read.status == 200 and read.body == KEPT
    assert stack.process_info("files")["pid"] == files_pid
    await files.quiet(user)
    versions = await files.versions(user)
    assert sorted(v["name"] for v in versions) == ["kept.osn", "lost.osn"]
    assert sorted(await files.blob_keys(user)) == sorted(v["blob_key"] for v in versions)
    await files.assert_nothing_held(user, used_bytes=len(KEPT) + 200_000, file_count=2)


# ---- S3's disk full -------------------------------------------------------------------------
# A replica of files whose S3 server (a versitygw of its own) keeps its objects on a 1 MiB
# tmpfs: an upload that does not fit is refused like an outage, leaves nothing, and once the
# filesystem has room again (remounted larger) the next upload succeeds - nothing restarted.


@contextlib.contextmanager
def small_filesystem(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def own_versitygw(stack, data: Path, meta: Path, log: Path):
    port = free_port()
    proc = subprocess.Popen(
        [str(paths.versitygw_binary()), "--port", f"127.0.0.1:{port}", "--health", "/healthz", "posix",
         *versitygw_metadata_args(data, meta), str(data)],
        env={**os.environ, "ROOT_ACCESS_KEY": stack.s3_access_key, "ROOT_SECRET_KEY": stack.s3_secret_key},
        stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while http_ok(f"http://127.0.0.1:{port}/healthz") is not None:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


async def test_s3_disk_full_upload_is_refused_cleanly_and_succeeds_once_there_is_room(stack, files, tmp_path):
    if stack.local is None:
        pytest.skip(f"mode {stack.mode}: needs the versitygw binary and a local filesystem")
    me, session = await files.start_user()
    user = session["user_id"]
    with small_filesystem(tmp_path / "s3data", "1m") as data, \
            own_versitygw(stack, data, tmp_path / "s3meta", tmp_path / "versitygw.log") as endpoint:
        async def ready(http, url):
            async with http.get(f"{url}/readyz") as reply:
                return reply.status == 200
        env = {"S3_ENDPOINT": endpoint, "AUTH_URL": stack.service_urls["auth"],
               "TRASH_URL": stack.service_urls["trash"]}
        async with service_replica(stack, "files", tmp_path / "files.log", ready, extra_env=env) as url, \
                aiohttp.ClientSession() as http:
            as_gateway = {"X-Gateway-Secret": stack.gateway_secret, "X-User-Id": user,
                          "X-Device-Id": session["device_id"]}

            async def put(name: str, size: int):
                async with http.put(f"{url}/api/files/OSM_NOTES/{name}", data=b"z" * size, headers=as_gateway) as r:
                    return r.status, await r.json(), r.headers

            status, body, headers = await put("big.osn", int(1.5 * MIB))
            assert status == 503, body
            assert body["error"]["code"] == "storage_full" and "nothing was stored" in body["error"]["message"]
            assert headers["Retry-After"] == "5"
            assert await files.versions(user) == []
            await files.assert_nothing_held(user, used_bytes=0, file_count=0)
            assert [p for p in data.rglob("*") if p.is_file()] == [], "a half-written object was left"

            subprocess.run(["mount", "-o", "remount,size=8m", str(data)], check=True)
            status, body, _ = await put("big.osn", int(1.5 * MIB))
            assert status == 201, body
            await files.quiet(user)
            await files.assert_nothing_held(user, used_bytes=int(1.5 * MIB), file_count=1)
