"""The crash points the reconciler handles, each simulated with the fakes: a process dies at
a chosen write (files_fakes.CrashPlan: no clean-up runs), the operation's time-to-live
passes, and another process's reconciler finishes or undoes what it left."""

from typing import Any

import pytest
from files_fakes import PRO, Crash, CrashPlan, World, body, trashed

from osmcloud_common.events import TrashItemPurged, make_event
from osmcloud_common.outbox import OutboxRelay
from osmcloud_files.domain import blob_key, parse_file_ref
from osmcloud_files.uploads import UploadRequest

GPX = parse_file_ref("u", "GPX", "a.gpx")


def at(collection: str, method: str, test: Any = None) -> CrashPlan:
    """Dies at the first `collection.method` call whose first argument passes `test`."""
    return CrashPlan(lambda c, m, args: c == collection and m == method and (test is None or test(args)))


def settling(args: tuple[Any, ...]) -> bool:
    """The ledger's settlement of an operation: the write that removes it from the account."""
    update = args[1] if len(args) > 1 else {}
    return any(k.startswith("ops.") for k in update.get("$unset", {}))


def head_move(method: str) -> CrashPlan:
    return at("heads", method)


def clean(account: dict[str, Any]) -> bool:
    return (account["ops"] == {} and account["op_count"] == 0 and account["reserved_bytes"] == 0
            and account["reserved_files"] == 0 and account["committed_bytes"] == account["used_bytes"]
            and account["committed_files"] == account["file_count"])


async def reconcile(world: World) -> int:
    world.later()
    return await world.process().reconciler.once()


async def upload(services: Any, data: bytes, ref: Any = GPX) -> dict[str, Any]:
    head, _ = await services.uploader.upload(UploadRequest(ref, "dev", body(data), len(data), overwrite=True))
    return head


# ---------------------------------------------------------------- uploads
async def test_crash_after_the_blob_is_written_before_the_head_moves_the_upload_is_undone():
    world = World()
    await world.give_plan("u", PRO)
    with pytest.raises(Crash):
        await upload(world.process(head_move("insert_one")), b"x" * 400)
    assert len(world.blobs.objects) == 1 and len(world.versions.docs) == 1  # left behind
    assert world.account("u")["reserved_bytes"] == 400
    assert await world.process().reconciler.once() == 0  # within its time-to-live it is left alone
    assert await reconcile(world) == 1
    account = world.account("u")
    assert clean(account) and (account["used_bytes"], account["file_count"]) == (0, 0)
    assert world.blobs.objects == {} and world.versions.docs == {} and world.heads.docs == {}


async def test_crash_after_the_head_moved_before_usage_is_settled_the_upload_is_settled():
    world = World()
    await world.give_plan("u", PRO)
    with pytest.raises(Crash):
        await upload(world.process(at("accounts", "find_one_and_update", settling)), b"x" * 400)
    assert world.account("u")["used_bytes"] == 0 and world.heads.docs[GPX.key]["_usage_pending"]
    assert await reconcile(world) == 1
    account = world.account("u")
    assert clean(account) and (account["used_bytes"], account["file_count"]) == (400, 1)
    assert account["stored_bytes"] == 400 + 256
    assert world.heads.docs[GPX.key]["_usage_pending"] == []
    assert world.events_in(world.accounts, "u") == ["storage-usage-changed"]
    assert await reconcile(world) == 0  # done once


async def test_crash_after_the_version_is_recorded_before_its_event_is_published_the_relay_publishes_it():
    world = World()
    await world.give_plan("u", PRO)
    services = world.process()
    head = await upload(services, b"x" * 10)
    # the process dies now: it never woke the relay. The event waits in the head's outbox,
    # and a relay's scan (another process, or this one restarted) publishes it.
    published: list[tuple[str, str, str]] = []

    class Producer:
        async def publish_many(self, messages: list[tuple[str, str, str, dict[str, str]]]) -> None:
            published.extend((topic, key, value) for topic, key, value, _ in messages)

    relay = OutboxRelay(Producer(), [world.heads, world.accounts])
    assert await relay.flush() == 2
    assert [key for _, key, _ in published] == ["u", "u"]
    assert any(head.version_id in value for _, _, value in published)
    assert world.events_in(world.heads, GPX.key) == [] and await relay.flush() == 0


async def test_crash_between_two_uploads_of_one_file_undoes_the_second_and_keeps_the_first():
    world = World()
    await world.give_plan("u", PRO)
    first = await upload(world.process(), b"a" * 100)
    with pytest.raises(Crash):
        await upload(world.process(head_move("find_one_and_update")), b"b" * 300)
    assert await reconcile(world) == 1
    account = world.account("u")
    assert clean(account) and account["used_bytes"] == 100
    assert world.heads.docs[GPX.key]["head"]["version_id"] == first.version_id
    assert list(world.blobs.objects) == [blob_key("u", first.version_id)]


# ---------------------------------------------------------------- deletes
async def test_crash_before_a_delete_marker_becomes_the_head_the_delete_is_undone():
    world = World()
    await world.give_plan("u", PRO)
    live = await upload(world.process(), b"x" * 100)
    with pytest.raises(Crash):
        await world.process(head_move("find_one_and_update")).ops.delete_file(GPX, None, "dev", None)
    assert len(world.versions.docs) == 2
    assert await reconcile(world) == 1
    assert list(world.versions.docs) == [live.version_id] and clean(world.account("u"))
    assert world.account("u")["used_bytes"] == 100


async def test_crash_after_the_delete_marker_became_the_head_before_usage_is_settled_usage_follows():
    world = World()
    await world.give_plan("u", PRO)
    await upload(world.process(), b"x" * 100)
    with pytest.raises(Crash):
        await world.process(at("accounts", "find_one_and_update", settling)).ops.delete_file(GPX, None, "dev", None)
    assert world.heads.docs[GPX.key]["head"]["deleted"] and world.account("u")["used_bytes"] == 100
    assert await reconcile(world) == 1
    account = world.account("u")
    assert clean(account) and (account["used_bytes"], account["file_count"]) == (0, 0)
    assert world.events_in(world.heads, GPX.key)[-1] == "file-deleted"  # trash learns it through Kafka


async def test_a_delete_marker_purged_before_its_crashed_delete_is_settled_still_takes_the_file_off_usage():
    """Finding 7 (docs/faults.md): the marker's file-deleted reaches trash (the relay of the next
    process), the user empties the trash, files purges the file — all before the reconciler
    takes the dead delete. The head it moved is gone; its usage change must not go with it."""
    world = World()
    await world.give_plan("u", PRO)
    await upload(world.process(), b"x" * 100)
    with pytest.raises(Crash):
        await world.process(at("accounts", "find_one_and_update", settling)).ops.delete_file(GPX, None, "dev", None)
    marker = world.heads.docs[GPX.key]["head"]
    await world.process().trash_reactions.items_purged([make_event(
        TrashItemPurged(file_type="GPX", name="a.gpx", tombstone_version_id=marker["version_id"], reason="emptied"),
        user_id="u", producer="trash", occurred_at=world.clock.now())])
    assert world.versions.docs == {} and world.blobs.objects == {}
    assert await reconcile(world) == 1
    account = world.account("u")
    assert clean(account) and (account["used_bytes"], account["file_count"], account["stored_bytes"]) == (0, 0, 0)
    assert not any(h.get("head") for h in world.heads.docs.values())


async def test_crash_after_a_removed_head_moved_before_its_version_is_dropped_the_version_goes():
    world = World()
    await world.give_plan("u", PRO)
    first = await upload(world.process(), b"a" * 100)
    second = await upload(world.process(), b"b" * 200)
    plan = at("versions", "delete_one")
    with pytest.raises(Crash):
        await world.process(plan).ops.remove_version(GPX, second.version_id)
    assert world.heads.docs[GPX.key]["head"]["version_id"] == first.version_id
    assert second.version_id in world.versions.docs  # the head no longer names it
    assert await reconcile(world) == 0  # settled already: the operation finished before the drop
    assert second.version_id in world.versions.docs


async def test_crash_after_a_removed_head_moved_before_settling_the_reconciler_drops_the_version():
    world = World()
    await world.give_plan("u", PRO)
    first = await upload(world.process(), b"a" * 100)
    second = await upload(world.process(), b"b" * 200)
    with pytest.raises(Crash):
        await world.process(at("accounts", "find_one_and_update", settling)).ops.remove_version(
            GPX, second.version_id)
    assert await reconcile(world) == 1
    assert list(world.versions.docs) == [first.version_id]
    assert list(world.blobs.objects) == [blob_key("u", first.version_id)]
    account = world.account("u")
    assert clean(account) and account["used_bytes"] == 100 and account["stored_bytes"] == 100 + 256


# ---------------------------------------------------------------- restore
async def test_crash_after_the_restored_copy_is_written_before_the_head_moves_the_restore_is_undone():
    world = World()
    await world.give_plan("u", PRO)
    live, marker = await trashed(world, GPX)
    with pytest.raises(Crash):
        await world.process(head_move("find_one_and_update")).ops.restore(GPX, marker.version_id, live.version_id, "d")
    assert len(world.blobs.objects) == 2 and world.account("u")["reserved_bytes"] == 700
    assert await reconcile(world) == 1
    assert list(world.blobs.objects) == [blob_key("u", live.version_id)]
    assert set(world.versions.docs) == {live.version_id, marker.version_id}
    account = world.account("u")
    assert clean(account) and (account["used_bytes"], account["file_count"]) == (0, 0)
    # the item is still in the trash, and restoring it again works
    head, _ = await world.process().ops.restore(GPX, marker.version_id, live.version_id, "d")
    assert world.account("u")["used_bytes"] == 700 and head.restored_from == marker.version_id


async def test_crash_after_the_restore_moved_the_head_before_usage_is_settled_usage_follows():
    world = World()
    await world.give_plan("u", PRO)
    live, marker = await trashed(world, GPX)
    with pytest.raises(Crash):
        await world.process(at("accounts", "find_one_and_update", settling)).ops.restore(
            GPX, marker.version_id, live.version_id, "d")
    assert not world.heads.docs[GPX.key]["head"]["deleted"] and world.account("u")["used_bytes"] == 0
    assert await reconcile(world) == 1
    account = world.account("u")
    assert clean(account) and (account["used_bytes"], account["file_count"]) == (700, 1)
    assert world.events_in(world.heads, GPX.key)[-1] == "file-restored"


# ---------------------------------------------------------------- bulk
async def test_crash_in_the_middle_of_a_bulk_delete_settles_the_files_it_moved():
    world = World()
    await world.give_plan("u", PRO)
    for name in ("a.gpx", "b.gpx", "c.gpx"):
        await upload(world.process(), b"x" * 100, ref=parse_file_ref("u", "GPX", name))
    moves = 0

    def third_move(collection: str, method: str, args: tuple[Any, ...]) -> bool:
        nonlocal moves
        if collection == "heads" and method == "find_one_and_update":
            moves += 1
        return moves == 3
    with pytest.raises(Crash):
        await world.process(CrashPlan(third_move)).ops.delete_type("u", "GPX", "dev")
    assert await reconcile(world) == 1
    account = world.account("u")
    assert clean(account) and (account["used_bytes"], account["file_count"]) == (100, 1)
    live = [k for k, d in world.heads.docs.items() if not d["head"]["deleted"]]
    assert live == ["u/GPX/c.gpx"]
    assert len(world.versions.docs) == 5  # three files, two markers; the third marker went


# ---------------------------------------------------------------- a stall, not a crash
def stalling(data: bytes, during_stall: Any) -> Any:
    """An upload body whose first read stalls past the operation's time-to-live, while
    `during_stall` runs (another replica's reconciler taking the operation for dead)."""
    reads = {"n": 0}

    async def read(n: int) -> bytes:
        reads["n"] += 1
        if reads["n"] == 1:
            await during_stall()
            return data
        return b""
    return read


async def test_an_upload_that_stalls_past_its_time_to_live_is_refused_not_acknowledged_and_lost():
    """Chaos finding 6: another replica's reconciler undid a stalled upload (removed its
    version, deleted its blob) and the upload then moved the head and answered 201 — an
    acknowledged file whose bytes were gone. Now the move holds the operation's lease first:
    taken over, the upload answers ChangeAbandoned and removes what it wrote since."""
    from osmcloud_files.errors import ChangeAbandoned

    world = World()
    await world.give_plan("u", PRO)
    kept = await upload(world.process(), b"a" * 100)

    async def other_replica_reconciles() -> None:
        assert await reconcile(world) == 1  # the stalled upload's operation, undone

    data = b"b" * 300
    with pytest.raises(ChangeAbandoned):
        await world.process().uploader.upload(
            UploadRequest(GPX, "dev", stalling(data, other_replica_reconciles), len(data), overwrite=True))
    account = world.account("u")
    assert clean(account) and (account["used_bytes"], account["file_count"]) == (100, 1)
    assert world.heads.docs[GPX.key]["head"]["version_id"] == kept.version_id
    assert list(world.versions.docs) == [kept.version_id]
    assert list(world.blobs.objects) == [blob_key("u", kept.version_id)]


async def test_an_upload_within_its_time_to_live_moves_the_head_without_an_extra_write():
    """The lease check costs nothing on the fast path: an operation begun (or renewed) within
    the last quarter of its time-to-live is not renewed again before its head moves."""
    world = World()
    await world.give_plan("u", PRO)
    services = world.process()
    writes: list[str] = []
    original = world.accounts.update_one

    async def counting(filter_: dict[str, Any], update: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        writes.append(",".join(update.get("$set", {})))
        return await original(filter_, update, *args, **kwargs)

    world.accounts.update_one = counting  # type: ignore[method-assign]
    await upload(services, b"x" * 10)
    assert not [w for w in writes if w.endswith(".expires")], writes  # no renewal
