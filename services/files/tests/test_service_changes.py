"""Service-layer tests of files' changes on fakes (files_fakes.py): uploads, deletes, the
removal of a version, restores and the ledger's limits — the application code and the real
store and ledger adapters, over in-memory collections, blobs and a fixed clock."""

import pytest
from files_fakes import PRO, START, World, body, trashed

from osmcloud_files.domain import blob_key, parse_file_ref
from osmcloud_files.errors import (
    Busy,
    FileChanged,
    FileCountExceeded,
    FileTooLarge,
    NoPlan,
    QuotaExceeded,
    UploadIncomplete,
    VersionConflict,
    VersionNotFound,
)
from osmcloud_files.uploads import UploadRequest

GPX = parse_file_ref("u", "GPX", "tracks/a.gpx")


def nothing_in_flight(account: dict) -> bool:
    return (account["ops"] == {} and account["op_count"] == 0 and account["reserved_bytes"] == 0
            and account["reserved_files"] == 0 and account["committed_bytes"] == account["used_bytes"]
            and account["committed_files"] == account["file_count"])


async def upload(world: World, data: bytes, ref=GPX, declared: bool = True, **more) -> dict:
    head, _ = await world.process().uploader.upload(
        UploadRequest(ref, "dev-1", body(data), len(data) if declared else None, **more))
    return head


# ---------------------------------------------------------------- uploads
async def test_an_upload_stores_its_blob_moves_the_head_and_settles_usage_with_its_events():
    world = World()
    await world.give_plan("u", PRO)
    head, account = await world.process().uploader.upload(UploadRequest(GPX, "dev-1", body(b"x" * 300), 300))
    assert (account["used_bytes"], account["file_count"]) == (300, 1) and nothing_in_flight(account)
    assert world.blobs.objects[blob_key("u", head.version_id)] == b"x" * 300
    assert world.heads.docs[GPX.key]["head"]["version_id"] == head.version_id
    assert world.heads.docs[GPX.key]["_usage_pending"][0]["op"] not in account["ops"]
    # the events sit in the documents they describe (the outbox), the relay is woken for both
    assert world.events_in(world.heads, GPX.key) == ["file-uploaded"]
    assert world.events_in(world.accounts, "u") == ["storage-usage-changed"]
    assert world.publisher.woken == [f"heads/{GPX.key}", "accounts/u"]


async def test_a_chunked_upload_reserves_as_it_streams_and_a_replacement_counts_only_its_growth():
    world = World()
    await world.give_plan("u", PRO)
    first = await upload(world, b"a" * 4000, declared=False)
    await upload(world, b"b" * 6000, declared=False, base=first.version_id)
    account = world.account("u")
    assert (account["used_bytes"], account["file_count"]) == (6000, 1) and nothing_in_flight(account)
    assert account["stored_bytes"] == 4000 + 6000 + 2 * 256  # both versions are kept


async def test_refusals_before_any_byte_leave_nothing_behind():
    world = World()
    with pytest.raises(NoPlan):
        await upload(world, b"x")
    await world.give_plan("u", PRO)
    with pytest.raises(QuotaExceeded) as over:
        await upload(world, b"x" * 10_001)
    assert over.value.details == {"quota_bytes": 10_000, "used_bytes": 0}
    await world.give_plan("u", {**PRO, "max_files": 1})
    await upload(world, b"x")
    with pytest.raises(FileCountExceeded):
        await upload(world, b"y", ref=parse_file_ref("u", "GPX", "b.gpx"))
    with pytest.raises(VersionConflict) as exists:
        await upload(world, b"z")
    assert exists.value.current is not None and "overwrite=true" in exists.value.message
    assert nothing_in_flight(world.account("u")) and len(world.blobs.objects) == 1


async def test_a_chunked_body_past_the_quota_is_refused_while_it_streams_and_undone():
    world = World()
    await world.give_plan("u", PRO)
    with pytest.raises(QuotaExceeded):
        await upload(world, b"x" * 12_000, declared=False)
    account = world.account("u")
    assert nothing_in_flight(account) and account["used_bytes"] == 0
    assert world.blobs.objects == {} and world.versions.docs == {}


async def test_a_body_shorter_than_declared_or_larger_than_allowed_is_undone():
    world = World()
    await world.give_plan("u", START)
    ref = parse_file_ref("u", "FAVOURITES", "f.gpx")
    with pytest.raises(UploadIncomplete):
        await world.process().uploader.upload(UploadRequest(ref, "d", body(b"x" * 10), 20))
    with pytest.raises(FileTooLarge):
        await upload(world, b"x" * 2_000_001, ref=ref, declared=False)
    assert nothing_in_flight(world.account("u")) and world.blobs.objects == {} and world.versions.docs == {}


# ---------------------------------------------------------------- delete, remove a version
async def test_a_delete_puts_a_marker_on_top_hands_the_event_to_trash_and_lowers_usage():
    world = World()
    await world.give_plan("u", PRO)
    first = await upload(world, b"x" * 500)
    with pytest.raises(VersionConflict):
        await world.process().ops.delete_file(GPX, "not-the-head", "dev-1", None)
    marker = await world.process().ops.delete_file(GPX, first.version_id, "dev-1", None)
    assert marker.deleted and world.heads.docs[GPX.key]["head"]["version_id"] == marker.version_id
    account = world.account("u")
    assert (account["used_bytes"], account["file_count"]) == (0, 0) and nothing_in_flight(account)
    assert [e["key"] for e in world.publisher.handed_to_trash] == ["u"]
    assert world.events_in(world.heads, GPX.key) == ["file-uploaded", "file-deleted"]


async def test_removing_the_delete_marker_brings_the_file_back_under_the_quota():
    world = World()
    await world.give_plan("u", PRO)
    await upload(world, b"x" * 6000)
    marker = await world.process().ops.delete_file(GPX, None, "dev-1", None)
    await upload(world, b"y" * 5000, ref=parse_file_ref("u", "GPX", "other.gpx"))
    with pytest.raises(QuotaExceeded):  # 6000 back + 5000 live > 10000
        await world.process().ops.remove_version(GPX, marker.version_id)
    assert world.heads.docs[GPX.key]["head"]["deleted"] and nothing_in_flight(world.account("u"))
    await world.process().ops.delete_file(parse_file_ref("u", "GPX", "other.gpx"), None, "dev-1", None)
    result = await world.process().ops.remove_version(GPX, marker.version_id)
    assert result is not None and result.head is not None and result.head.size == 6000 and not result.head.deleted
    account = world.account("u")
    assert (account["used_bytes"], account["file_count"]) == (6000, 1) and nothing_in_flight(account)
    assert marker.version_id not in world.versions.docs


# ---------------------------------------------------------------- restore from the trash
async def test_a_restore_saves_the_last_version_again_as_a_ledger_operation():
    world = World()
    await world.give_plan("u", PRO)
    live, marker = await trashed(world, GPX)
    head, retried = await world.process().ops.restore(GPX, marker.version_id, live.version_id, "dev-2")
    assert not retried and head.version_id != live.version_id and head.restored_from == marker.version_id
    assert world.blobs.objects[blob_key("u", head.version_id)] == b"r" * 700  # a copy of its own
    assert head.seq > marker.seq  # the changes feed shows it
    account = world.account("u")
    assert (account["used_bytes"], account["file_count"]) == (700, 1) and nothing_in_flight(account)
    assert world.events_in(world.heads, GPX.key)[-1] == "file-restored"
    assert world.events_in(world.accounts, "u")[-1] == "storage-usage-changed"
    again, retried = await world.process().ops.restore(GPX, marker.version_id, live.version_id, "dev-2")
    assert retried and again.version_id == head.version_id and world.account("u")["used_bytes"] == 700


async def test_a_restore_over_the_quota_or_of_a_changed_or_purged_file_is_refused_and_reserves_nothing():
    world = World()
    await world.give_plan("u", PRO)
    live, marker = await trashed(world, GPX, size=6000)
    await upload(world, b"y" * 5000, ref=parse_file_ref("u", "GPX", "other.gpx"))
    with pytest.raises(QuotaExceeded):
        await world.process().ops.restore(GPX, marker.version_id, live.version_id, "d")
    with pytest.raises(FileChanged):
        await world.process().ops.restore(GPX, "an-older-marker", live.version_id, "d")
    del world.blobs.objects[blob_key("u", live.version_id)]  # purged meanwhile
    await world.give_plan("u", {**PRO, "quota_bytes": 100_000})
    with pytest.raises(VersionNotFound):
        await world.process().ops.restore(GPX, marker.version_id, live.version_id, "d")
    account = world.account("u")
    assert nothing_in_flight(account) and account["used_bytes"] == 5000
    assert world.heads.docs[GPX.key]["head"]["version_id"] == marker.version_id
    assert len(world.versions.docs) == 3  # the two of the trashed file, other.gpx's


# ---------------------------------------------------------------- delete all
async def test_delete_all_refuses_new_changes_while_it_runs_and_empties_everything():
    world = World()
    await world.give_plan("u", PRO)
    await upload(world, b"x" * 100)
    services = world.process()
    await services.ledger.freeze("u", "op-all", {"kind": "delete-all"})
    with pytest.raises(Busy):
        await upload(world, b"y", ref=parse_file_ref("u", "GPX", "b.gpx"))
    await services.ops._delete_all("u", "op-all")
    account = world.account("u")
    assert (account["used_bytes"], account["file_count"], account["stored_bytes"]) == (0, 0, 0)
    assert nothing_in_flight(account) and account["frozen"] is None
    assert world.blobs.objects == {} and world.versions.docs == {} and world.heads.docs == {}


# ---------------------------------------------------------------- old versions
async def test_prune_keeps_the_head_of_every_live_file_and_the_versions_of_trashed_ones():
    world = World()
    await world.give_plan("u", PRO)
    for data in (b"a" * 10, b"b" * 20, b"c" * 30):
        await upload(world, data, overwrite=True)
    other = parse_file_ref("u", "GPX", "gone.gpx")
    await upload(world, b"x", ref=other)
    await upload(world, b"y", ref=other, overwrite=True)
    await world.process().ops.delete_file(other, None, "d", None)
    result = await world.process().ops.prune("u", None)
    assert result == {"type": None, "removed_versions": 2, "freed_bytes": 30}
    kept = sorted(v["size"] for v in world.versions.docs.values())
    assert kept == [-1, 1, 1, 30]  # a.gpx's head; gone.gpx's marker and both its versions
    assert world.account("u")["stored_bytes"] == 30 + 1 + 1 + 4 * 256
    assert world.events_in(world.accounts, "u")[-1] == "file-versions-pruned"


async def test_an_upload_over_the_storage_limit_frees_the_oldest_old_versions_of_the_same_file():
    world = World()
    await world.give_plan("u", {**PRO, "storage_limit_bytes": 3000})
    for data in (b"a" * 1000, b"b" * 1000, b"c" * 1000):
        await upload(world, data, overwrite=True)
    sizes = sorted((v["updated_ms"], v["size"]) for v in world.versions.docs.values())
    assert len(sizes) == 2  # the oldest went to make room for the newest
    assert world.account("u")["stored_bytes"] <= 3000
    assert [e["key"] for e in world.publisher.handed_to_trash] == ["u"]  # file-versions-pruned, at once
