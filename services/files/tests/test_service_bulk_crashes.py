"""A bulk upload's batch is one ledger operation (bulk_batch.py, kind "bulk-upload"); a process
that dies at any point of it leaves what the reconciler finishes or undoes: usage exact, no
orphan blob or version (files_fakes.CrashPlan: the process dies at a chosen write, no clean-up
runs)."""

from typing import Any

import pytest
from files_fakes import PRO, Crash, CrashPlan, World, body
from test_service_crashes import clean, reconcile, settling

from osmcloud_files.bulk_batch import SmallFile
from osmcloud_files.domain import blob_key, parse_file_ref
from osmcloud_files.uploads import UploadRequest

A, B, C = (parse_file_ref("u", "GPX", f"{n}.gpx") for n in "abc")


def at(collection: str, method: str, nth: int = 1) -> CrashPlan:
    """Dies at the nth `collection.method` call."""
    calls = 0

    def when(c: str, m: str, _: tuple[Any, ...]) -> bool:
        nonlocal calls
        if (c, m) == (collection, method):
            calls += 1
        return calls >= nth
    return CrashPlan(when)


def batch(*files: tuple[Any, bytes]) -> list[SmallFile]:
    return [SmallFile(i, ref, data, None, True, None, "dev", {}) for i, (ref, data) in enumerate(files)]


async def existing(world: World, *refs: Any) -> dict[str, str]:
    """Files of 100 bytes each; their head version ids by key."""
    heads = {}
    for ref in refs:
        head, _ = await world.process().uploader.upload(UploadRequest(ref, "dev", body(b"o" * 100), 100))
        heads[ref.key] = head.version_id
    return heads


def live_blobs(world: World) -> set[str]:
    return {v["blob_key"] for v in world.versions.docs.values() if v.get("blob_key")}


async def test_a_batch_is_one_operation_with_one_usage_event():
    world = World()
    await world.give_plan("u", PRO)
    out = await world.process().batches.upload("u", batch((A, b"a" * 10), (B, b"b" * 20), (C, b"c" * 30)))
    assert sorted(out.heads) == [0, 1, 2] and not out.refused
    account = world.account("u")
    assert clean(account) and (account["used_bytes"], account["file_count"]) == (60, 3)
    assert account["stored_bytes"] == 60 + 3 * 256 and account["change_seq"] == 3
    assert sorted(h.seq or 0 for h in out.heads.values()) == [1, 2, 3]
    assert world.events_in(world.accounts, "u") == ["storage-usage-changed"]
    assert all(world.events_in(world.heads, r.key) == ["file-uploaded"] for r in (A, B, C))
    assert live_blobs(world) == set(world.blobs.objects)


async def test_crash_after_the_blobs_before_the_versions_and_heads_the_batch_is_undone():
    world = World()
    await world.give_plan("u", PRO)
    with pytest.raises(Crash):
        await world.process(at("versions", "insert_many")).batches.upload("u", batch((A, b"a" * 10), (B, b"b" * 20)))
    assert len(world.blobs.objects) == 2 and world.account("u")["reserved_bytes"] == 30  # left behind
    assert await reconcile(world) == 1
    account = world.account("u")
    assert clean(account) and (account["used_bytes"], account["file_count"], account["stored_bytes"]) == (0, 0, 0)
    assert world.blobs.objects == {} and world.versions.docs == {} and world.heads.docs == {}


async def test_crash_after_the_versions_before_the_heads_the_batch_is_undone():
    world = World()
    await world.give_plan("u", PRO)
    before = await existing(world, A)
    with pytest.raises(Crash):
        await world.process(at("heads", "insert_many")).batches.upload("u", batch((A, b"a" * 10), (B, b"b" * 20)))
    assert len(world.versions.docs) == 3
    assert await reconcile(world) == 1
    account = world.account("u")
    assert clean(account) and (account["used_bytes"], account["file_count"]) == (100, 1)
    assert list(world.versions.docs) == [before[A.key]] and set(world.blobs.objects) == live_blobs(world)
    assert world.heads.docs[A.key]["head"]["version_id"] == before[A.key] and B.key not in world.heads.docs


async def test_crash_after_some_heads_moved_before_the_finish_the_moved_ones_are_settled_the_rest_undone():
    world = World()
    await world.give_plan("u", PRO)
    before = await existing(world, A, B)
    # C is new (inserted), A moves, the process dies moving B
    with pytest.raises(Crash):
        await world.process(at("heads", "find_one_and_update", nth=2)).batches.upload(
            "u", batch((A, b"a" * 1000), (B, b"b" * 2000), (C, b"c" * 300)))
    assert world.heads.docs[C.key]["head"]["size"] == 300 and world.heads.docs[A.key]["head"]["size"] == 1000
    assert world.heads.docs[B.key]["head"]["version_id"] == before[B.key]
    assert await reconcile(world) == 1
    account = world.account("u")
    assert clean(account) and (account["used_bytes"], account["file_count"]) == (1000 + 100 + 300, 3)
    assert account["stored_bytes"] == 100 + 100 + 1000 + 300 + 4 * 256  # A's old and new, B's old, C
    assert {(v["name"], v["size"]) for v in world.versions.docs.values()} == {
        ("a.gpx", 100), ("a.gpx", 1000), ("b.gpx", 100), ("c.gpx", 300)}
    assert set(world.blobs.objects) == live_blobs(world)  # B's new blob went with its version
    assert world.events_in(world.accounts, "u")[-1] == "storage-usage-changed"
    assert await reconcile(world) == 0  # done once


async def test_crash_at_the_settlement_every_moved_file_is_settled():
    world = World()
    await world.give_plan("u", PRO)
    await existing(world, A)
    with pytest.raises(Crash):
        await world.process(CrashPlan(lambda c, m, args: c == "accounts" and m == "find_one_and_update"
                                                 and settling(args))).batches.upload(
            "u", batch((A, b"a" * 10), (B, b"b" * 20)))
    assert world.account("u")["used_bytes"] == 100
    assert await reconcile(world) == 1
    account = world.account("u")
    assert clean(account) and (account["used_bytes"], account["file_count"]) == (30, 2)
    assert len(world.versions.docs) == 3 and set(world.blobs.objects) == live_blobs(world)


async def test_a_head_moved_by_another_device_meanwhile_is_a_conflict_and_leaves_nothing():
    world = World()
    await world.give_plan("u", PRO)
    await existing(world, A)
    services = world.process()
    files = [SmallFile(0, A, b"a" * 10, None, True, None, "dev", {}),
             SmallFile(1, B, b"b" * 20, None, False, None, "dev", {})]
    original = services.store.add_versions

    async def and_another_device_uploads(versions: Any) -> None:
        await original(versions)
        await world.process().uploader.upload(UploadRequest(A, "tablet", body(b"t" * 50), 50, overwrite=True))
    services.store.add_versions = and_another_device_uploads  # type: ignore[method-assign]
    out = await services.batches.upload("u", files)
    assert list(out.heads) == [1] and out.refused[0].code == "version_conflict"
    account = world.account("u")
    assert clean(account) and (account["used_bytes"], account["file_count"]) == (50 + 20, 2)
    assert world.heads.docs[A.key]["head"]["size"] == 50
    assert sorted(v["size"] for v in world.versions.docs.values()) == [20, 50, 100]
    assert set(world.blobs.objects) == live_blobs(world)
    assert blob_key("u", out.heads[1].version_id) in world.blobs.objects


async def test_a_blob_that_cannot_be_written_undoes_the_batch_at_once_after_every_put_ended():
    world = World()
    await world.give_plan("u", PRO)
    put, calls = world.blobs.put_stream, []

    async def flaky(key: str, read: Any, limit: Any = None, content_type: str = "") -> Any:
        calls.append(key)
        if len(calls) == 2:
            raise OSError("S3 said no")
        return await put(key, read, limit)
    world.blobs.put_stream = flaky  # type: ignore[method-assign]
    with pytest.raises(OSError):
        await world.process().batches.upload("u", batch((A, b"a"), (B, b"b"), (C, b"c")))
    account = world.account("u")
    assert clean(account) and (account["used_bytes"], account["file_count"]) == (0, 0)
    assert world.blobs.objects == {} and world.versions.docs == {} and world.heads.docs == {}
