"""Streaming: bodies flow through files without being held whole; unknown lengths, bodies over
the limit, bodies cut off, failures mid-way and crashes leave no version, no blob and no
usage or reservation behind."""

import asyncio
import hashlib
import io
import os
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

from osmcloud_common.blobstore import PART_SIZE
from osmcloud_common.events import Entitlement
from osmcloud_localstack.client import eventually

MIB = 1024 * 1024
BIG = Entitlement(plan="pro", quota_bytes=3000 * MIB, allowed_types=None)


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    def __init__(self, pid: int) -> None:
        self.pid, self.start, self.peak, self._stop = pid, rss(pid), 0, threading.Event()
        self.peak = self.start
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss(self.pid))
            time.sleep(0.01)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def generated(total: int, block: bytes, digest=None, pause: float = 0.0):
    async def gen():
        sent = 0
        while sent < total:
            piece = block[:total - sent]
            if digest is not None:
                digest.update(piece)
            sent += len(piece)
            if pause:
                await asyncio.sleep(pause)
            yield piece
    return gen()


async def test_a_200_mb_upload_and_download_stream_through_bounded_memory(files):
    me, session = await files.user_with(BIG)
    pid = files.files_pid()
    total, block = 200 * MIB, os.urandom(MIB)
    digest = hashlib.sha256()
    with PeakRss(pid) as up:
        reply = await me.call("PUT", "/api/files/FILE/big/200mb.bin", data=generated(total, block, digest),
                              headers={"Content-Length": str(total)})
    assert reply.status == 201, reply
    assert reply.body["size"] == total and reply.body["checksum"] == "sha256:" + digest.hexdigest()
    # a memory bound, not a timing: the body is never held whole (nor anywhere near)
    assert up.peak - up.start < 64 * MIB, f"files grew by {(up.peak - up.start) / MIB:.1f} MiB"

    got = hashlib.sha256()
    size = 0
    with PeakRss(pid) as down:
        async with me.session.get(me.base + "/api/files/FILE/big/200mb.bin",
                                  headers={"Authorization": f"Bearer {me.token}"}) as response:
            assert response.status == 200
            async for chunk in response.content.iter_chunked(MIB):
                got.update(chunk)
                size += len(chunk)
    assert size == total and got.hexdigest() == digest.hexdigest()
    assert down.peak - down.start < 64 * MIB, f"files grew by {(down.peak - down.start) / MIB:.1f} MiB"
    await files.assert_nothing_held(session["user_id"], total, 1)


async def test_ranges_of_a_stored_file(files):
    me, _ = await files.start_user()
    body = bytes(range(256)) * 40
    assert (await me.call("PUT", "/api/files/GLOBAL/settings.json", data=body)).status == 201
    part = await me.call("GET", "/api/files/GLOBAL/settings.json", headers={"Range": "bytes=100-355"})
    assert part.status == 206 and part.body == body[100:356]
    assert part.headers["Content-Range"] == f"bytes 100-355/{len(body)}"
    tail = await me.call("GET", "/api/files/GLOBAL/settings.json", headers={"Range": "bytes=-10"})
    assert tail.status == 206 and tail.body == body[-10:]
    outside = await me.call("GET", "/api/files/GLOBAL/settings.json", headers={"Range": f"bytes={len(body)}-"})
    assert outside.status == 416


async def test_a_body_of_several_parts_comes_back_whole_and_in_ranges_with_its_checksum(files):
    """A body over one part goes to S3 as a multipart upload, its parts sent unsigned (files
    hashes the body once): what comes back is what went in, whole, across a part's edge and
    at the end, under the checksum of the body; the newest version's download is read from
    its head, an older one's by its id."""
    me, _ = await files.user_with(BIG)
    body = os.urandom(2 * PART_SIZE + 12345)
    first = await me.call("PUT", "/api/files/FILE/big/parts.bin", data=body)
    assert first.status == 201, first
    assert first.body["checksum"] == "sha256:" + hashlib.sha256(body).hexdigest()
    whole = await me.call("GET", "/api/files/FILE/big/parts.bin")
    assert whole.status == 200 and whole.body == body
    assert whole.headers["X-Checksum"] == first.body["checksum"]
    assert whole.headers["X-Version-Id"] == first.body["version_id"]
    edge = await me.call("GET", "/api/files/FILE/big/parts.bin",
                         headers={"Range": f"bytes={PART_SIZE - 100}-{PART_SIZE + 99}"})
    assert edge.status == 206 and edge.body == body[PART_SIZE - 100:PART_SIZE + 100]
    assert edge.headers["Content-Range"] == f"bytes {PART_SIZE - 100}-{PART_SIZE + 99}/{len(body)}"
    tail = await me.call("GET", "/api/files/FILE/big/parts.bin", headers={"Range": "bytes=-7"})
    assert tail.status == 206 and tail.body == body[-7:]

    newer = body[::-1]
    second = await me.call("PUT", "/api/files/FILE/big/parts.bin", data=newer, params={"overwrite": "true"})
    assert second.status == 201, second
    assert (await me.call("GET", "/api/files/FILE/big/parts.bin")).body == newer
    old = await me.call("GET", "/api/files/FILE/big/parts.bin", params={"version": first.body["version_id"]},
                        headers={"Range": f"bytes={PART_SIZE}-{PART_SIZE + 9}"})
    assert old.status == 206 and old.body == body[PART_SIZE:PART_SIZE + 10]
    assert old.headers["X-Checksum"] == first.body["checksum"]


async def test_a_body_of_unknown_length(files):
    me, session = await files.user_with(BIG)
    total, block = 20 * MIB + 4321, os.urandom(256 * 1024)
    digest = hashlib.sha256()
    reply = await me.call("PUT", "/api/files/GPX/tracks/chunked.gpx", data=generated(total, block, digest))
    assert reply.status == 201, reply
    assert reply.body["size"] == total and reply.body["checksum"] == "sha256:" + digest.hexdigest()
    await files.assert_nothing_held(session["user_id"], total, 1)  # the stepwise reservation became usage
    first_bytes = await me.call("GET", "/api/files/GPX/tracks/chunked.gpx", headers={"Range": "bytes=0-9"})
    assert first_bytes.body == block[:10]


async def test_bodies_over_the_per_file_limit_leave_nothing(files):
    me, session = await files.start_user()  # Start: 2 MiB per file
    user = session["user_id"]
    declared = await me.call("PUT", "/api/files/FAVOURITES/huge.gpx", data=b"x" * (2 * MIB + 1))
    assert declared.status == 413 and declared.error_code() == "file_too_large", declared
    chunked = await me.call("PUT", "/api/files/FAVOURITES/huge.gpx", data=generated(3 * MIB, b"y" * 65536))
    assert chunked.status == 413 and chunked.error_code() == "file_too_large", chunked
    assert "2097152" in chunked.body["error"]["message"]
    assert await files.blob_keys(user) == [] and await files.versions(user) == []
    await files.assert_nothing_held(user, 0, 0)
    exact = await me.call("PUT", "/api/files/FAVOURITES/huge.gpx", data=generated(2 * MIB, b"z" * 65536))
    assert exact.status == 201, exact  # the limit itself is allowed
    await files.assert_nothing_held(user, 2 * MIB, 1)


async def _cut_off_upload(files, token: str, path: str, headers: list[str], first_bytes: bytes) -> None:
    """Sends the headers and part of a body through the gateway, then drops the connection."""
    gateway = urlparse(files.stack.gateway_url)
    reader, writer = await asyncio.open_connection(gateway.hostname, gateway.port)
    request = [f"PUT {path} HTTP/1.1", f"Host: {gateway.netloc}", f"Authorization: Bearer {token}", *headers, "", ""]
    writer.write("\r\n".join(request).encode() + first_bytes)
    await writer.drain()
    await asyncio.sleep(0.5)
    writer.transport.abort()


async def test_a_client_that_cuts_the_connection_mid_body_leaves_nothing(files):
    me, session = await files.user_with(BIG)
    user = session["user_id"]
    await _cut_off_upload(files, me.token, "/api/files/FILE/cut/declared.bin",
                          [f"Content-Length: {30 * MIB}"], os.urandom(12 * MIB))
    chunk = os.urandom(MIB)
    chunked_body = b"".join(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(10))
    await _cut_off_upload(files, me.token, "/api/files/FILE/cut/chunked.bin",
                          ["Transfer-Encoding: chunked"], chunked_body)

    async def all_clear():
        account = await files.account(user)
        return (not await files.blob_keys(user) and not await files.versions(user)
                and account["reserved_bytes"] == 0 and account.get("op_count") == 0)
    await eventually(all_clear, timeout=30, what="the cut-off uploads leaving nothing behind")
    await files.assert_nothing_held(user, 0, 0)
    assert (await me.call("GET", "/api/files")).body["files"] == []
    assert (await me.call("GET", "/api/files/FILE/cut/declared.bin")).status == 404


async def test_a_failure_mid_way_leaves_nothing(files):
    # the quota runs out while a body of unknown length streams in
    small = Entitlement(plan="pro", quota_bytes=3 * MIB, allowed_types=None)
    me, session = await files.user_with(small)
    user = session["user_id"]
    reply = await me.call("PUT", "/api/files/FILE/too-much.bin", data=generated(5 * MIB, b"q" * 65536))
    assert reply.status == 413 and reply.error_code() == "quota_exceeded", reply
    assert "quota" in reply.body["error"]["message"]
    assert await files.blob_keys(user) == [] and await files.versions(user) == []
    await files.assert_nothing_held(user, 0, 0)


async def test_a_conflict_found_after_the_body_was_stored_removes_the_blob(files):
    me, session = await files.user_with(BIG)
    user = session["user_id"]
    base = (await me.call("PUT", "/api/files/FILE/shared.bin", data=b"base")).body["version_id"]
    slow = asyncio.create_task(me.call("PUT", "/api/files/FILE/shared.bin", params={"base_version": base},
                                       data=generated(12 * MIB, b"s" * MIB, pause=0.15)))
    await asyncio.sleep(0.5)
    fast = await me.call("PUT", "/api/files/FILE/shared.bin", params={"base_version": base}, data=b"fast")
    assert fast.status == 201, fast
    late = await slow
    assert late.status == 409 and late.error_code() == "version_conflict", late
    assert late.body["error"]["head"]["version_id"] == fast.body["version_id"]
    assert sorted(await files.blob_keys(user)) == sorted(f"users/{user}/{v}" for v in (base, fast.body["version_id"]))
    await files.assert_nothing_held(user, 4, 1)


async def test_a_crash_between_storing_the_blob_and_moving_the_head_is_reconciled(files):
    """Simulates what a files process killed at that moment leaves: the operation in the
    account's ledger (its reservation held), the blob in S3 and the version document, but
    no head. The reconciler removes all of it once the operation has not been renewed."""
    me, session = await files.user_with(BIG)
    user = session["user_id"]
    kept = await me.call("PUT", "/api/files/FILE/kept.bin", data=b"kept")
    assert kept.status == 201
    await files.quiet(user)
    op_id, version_id = uuid.uuid4().hex, uuid.uuid4().hex
    blob_key = f"users/{user}/{version_id}"
    payload = b"orphan" * 1000
    await asyncio.to_thread(files.s3.put_object, files.stack.s3_bucket, blob_key, io.BytesIO(payload),
                            len(payload))
    await files.db["versions"].insert_one({"_id": version_id, "user_id": user, "type": "FILE", "name": "lost.bin",
                                           "blob_key": blob_key, "size": len(payload), "deleted": False,
                                           "updated_ms": 1, "seq": 99, "op": op_id})
    await files.db["accounts"].update_one({"_id": user}, {
        "$set": {f"ops.{op_id}": {"kind": "upload", "file": f"{user}/FILE/lost.bin", "version_id": version_id,
                                  "blob_key": blob_key, "bytes": len(payload), "files": 1,
                                  "expires": time.time() - 3600, "floor": 3}},
        "$inc": {"op_count": 1, "reserved_bytes": len(payload), "committed_bytes": len(payload),
                 "reserved_files": 1, "committed_files": 1, "change_seq": 1}})

    async def reconciled():
        account = await files.account(user)
        return account.get("op_count") == 0 and blob_key not in await files.blob_keys(user)
    await eventually(reconciled, timeout=60, what="the reconciler undoing the crashed upload")
    assert [v["_id"] for v in await files.versions(user)] == [kept.body["version_id"]]
    await files.assert_nothing_held(user, 4, 1)
    # the feed moves on past the abandoned change number
    feed = (await me.call("GET", "/api/files/changes")).body
    assert [c["name"] for c in feed["changes"]] == ["kept.bin"]


async def test_a_crash_after_moving_the_head_is_settled(files):
    """The head was moved (with its pending usage change) but the process died before the
    account was settled: the reconciler settles it, so usage counts the new version."""
    me, session = await files.user_with(BIG)
    user = session["user_id"]
    first = (await me.call("PUT", "/api/files/FILE/doc.bin", data=b"1234")).body
    await files.quiet(user)
    op_id, version_id = uuid.uuid4().hex, uuid.uuid4().hex
    blob_key = f"users/{user}/{version_id}"
    payload = b"0123456789"
    await asyncio.to_thread(files.s3.put_object, files.stack.s3_bucket, blob_key, io.BytesIO(payload),
                            len(payload))
    account = await files.account(user)
    seq = account["change_seq"] + 1
    await files.db["accounts"].update_one({"_id": user}, {
        "$set": {f"ops.{op_id}": {"kind": "upload", "file": f"{user}/FILE/doc.bin", "version_id": version_id,
                                  "blob_key": blob_key, "bytes": 6, "files": 0,
                                  "expires": time.time() - 3600, "floor": seq - 1}},
        "$inc": {"op_count": 1, "reserved_bytes": 6, "committed_bytes": 6, "change_seq": 1}})
    head = {"version_id": version_id, "size": 10, "checksum": "sha256:" + hashlib.sha256(payload).hexdigest(),
            "updated_ms": first["updatetime"] + 1, "client_ms": None, "device_id": None, "deleted": False, "seq": seq}
    await files.db["versions"].insert_one({"_id": version_id, "user_id": user, "type": "FILE", "name": "doc.bin",
                                           "blob_key": blob_key, **head, "op": op_id})
    await files.db["heads"].update_one({"_id": f"{user}/FILE/doc.bin"}, {
        "$set": {"head": head, "changed_seq": seq, "_usage_pending": [{"op": op_id, "bytes": 6, "files": 0}]}})

    async def settled():
        return (await files.account(user)).get("op_count") == 0
    await eventually(settled, timeout=60, what="the reconciler settling the crashed upload")
    await files.assert_nothing_held(user, 10, 1)
    assert (await me.call("GET", "/api/files/FILE/doc.bin")).body == payload
    usage = await files.events("files", user, lambda evs: any(
        e["type"] == "storage-usage-changed" and e["data"]["used_bytes"] == 10 for e in evs))
    assert usage
