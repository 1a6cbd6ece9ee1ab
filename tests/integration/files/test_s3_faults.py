"""S3 away: an upload fails cleanly with 503 JSON and leaves no version, no blob and no
reservation; reads that need no blob keep working; when S3 is back the next upload succeeds,
without restarting anything. S3's disk full: test_disk_full.py."""

import asyncio
import time

import pytest

from osmcloud_localstack.testing import CannotControl

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
