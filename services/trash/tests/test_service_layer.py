"""Trash's use cases on fakes (an in-memory store, a recording publisher, fixed clocks), wired
by the same bootstrap as app.py: the replica-safe purge with a crash at each of its steps and
an idempotent re-run, delete-now, empty and restore. No Mongo, no Kafka, no HTTP."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from osmcloud_common.clock import FixedClock
from osmcloud_common.events import FileDeleted, FileUploaded, make_event
from osmcloud_common.outbox import decode_value
from osmcloud_common.publisher import RecordingPublisher
from osmcloud_trash.bootstrap import Trash, bootstrap
from osmcloud_trash.errors import FilesUnavailable, ItemNotFound, RestoreInProgress, RestoreRefused, RestoreUnavailable
from osmcloud_trash.routes import native_error
from osmcloud_trash.settings import TrashSettings

DELETED_AT = datetime(2026, 3, 1, tzinfo=UTC)
LEASE = 120.0


class Crash(Exception):
    """The process dies here."""


class FakeTrashStore:
    """TrashStorePort in memory, with TrashStore's semantics (an `_id` is unique; a batch
    carries its events in its own document). `crash_in` names a method that dies once, before
    it writes anything, the next time it is called with something to write."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.claims: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.emptied: dict[str, datetime] = {}
        self.crash_in: str | None = None

    def _maybe_crash(self, method: str, work: list[Any]) -> None:
        if self.crash_in == method and work:
            self.crash_in = None
            raise Crash(method)

    async def add(self, item: dict[str, Any]) -> None:
        self.items.setdefault(item["_id"], dict(item))

    async def items_named(self, user_id: str, file_type: str, names: list[str]) -> list[dict[str, Any]]:
        return [dict(i) for i in self.items.values()
                if (i["user_id"], i["type"]) == (user_id, file_type) and i["name"] in names]

    async def of_user(self, user_id: str) -> list[dict[str, Any]]:
        return sorted((dict(i) for i in self.items.values() if i["user_id"] == user_id),
                      key=lambda i: i["deleted_at"], reverse=True)

    async def item(self, item_id: str) -> dict[str, Any] | None:
        return dict(self.items[item_id]) if item_id in self.items else None

    async def items_of_files(self, user_id: str, names: list[str]) -> list[dict[str, Any]]:
        return [dict(i) for i in self.items.values() if i["user_id"] == user_id and i["name"] in names]

    async def purged_in_a_batch(self, item_ids: list[str]) -> set[str]:
        return {i for b in self.batches.values() for i in b["item_ids"]} & set(item_ids)

    async def remove_item(self, item_id: str) -> None:
        self.items.pop(item_id, None)

    async def remove_items(self, item_ids: list[str]) -> None:
        self._maybe_crash("remove_items", item_ids)
        for item_id in item_ids:
            self.items.pop(item_id, None)

    async def remove_user(self, user_id: str) -> int:
        gone = [k for k, i in self.items.items() if i["user_id"] == user_id]
        for key in gone:
            del self.items[key]
        return len(gone)

    async def existing(self, item_ids: list[str]) -> set[str]:
        return set(item_ids) & set(self.items)

    async def due(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        return [dict(i) for i in self.items.values() if i["expires_at"] <= now][:limit]

    async def count(self) -> int:
        return len(self.items)

    async def mark_emptied(self, user_id: str, at: datetime) -> None:
        self.emptied[user_id] = max(at, self.emptied.get(user_id, at))

    async def emptied_since(self, user_id: str, at: datetime) -> bool:
        return user_id in self.emptied and self.emptied[user_id] >= at

    async def claim_many(self, claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
        won = [c for c in claims if c["_id"] not in self.claims]
        self.claims.update({c["_id"]: dict(c) for c in won})
        return won

    async def claim_one(self, claim: dict[str, Any]) -> bool:
        return bool(await self.claim_many([claim]))

    async def claim(self, item_id: str) -> dict[str, Any] | None:
        return self.claims.get(item_id)

    async def release(self, item_id: str, action: str) -> None:
        if self.claims.get(item_id, {}).get("action") == action:
            del self.claims[item_id]

    async def release_many(self, item_ids: list[str]) -> None:
        self._maybe_crash("release_many", item_ids)
        for item_id in item_ids:
            self.claims.pop(item_id, None)

    async def stale_claims(self, older_than: datetime) -> list[dict[str, Any]]:
        return [dict(c) for c in self.claims.values() if c["claimed_at"] < older_than]

    async def write_batches(self, batches: list[tuple[str, str, list[str], list[dict[str, Any]]]],
                            created_at: datetime, written_at: datetime) -> set[str]:
        self._maybe_crash("write_batches", batches)
        written = set()
        for batch_id, user_id, item_ids, events in batches:
            if batch_id not in self.batches:
                self.batches[batch_id] = {"_id": batch_id, "user_id": user_id, "item_ids": item_ids,
                                          "written_at": written_at, "_outbox": list(events)}
                written.add(batch_id)
        return written

    async def forget_relayed_batches(self, written_before: datetime) -> int:
        return 0  # nothing is relayed here: every batch keeps its events

    def events(self, event_type: str = "trash-item-purged") -> list[Any]:
        return [e for b in self.batches.values() for e in map(decode_value, b["_outbox"]) if e.type == event_type]

    def purged_ids(self) -> list[str]:
        return sorted(e.data["tombstone_version_id"] for e in self.events())


class FakeFiles:
    def __init__(self) -> None:
        self.restored: list[str] = []
        self.refuse: RestoreRefused | None = None
        self.down = False

    async def restore(self, item: dict[str, Any]) -> dict[str, Any]:
        if self.down:
            raise FilesUnavailable("down")
        if self.refuse is not None:
            raise self.refuse
        self.restored.append(item["_id"])
        return {"version_id": f"v-{item['_id']}"}

    async def history(self, user_id: str, file_type: str, name: str) -> list[dict[str, Any]]:
        return []


class World:
    def __init__(self) -> None:
        self.clock = FixedClock(DELETED_AT)
        self.wall = FixedClock(datetime(2030, 1, 1, tzinfo=UTC))
        self.store, self.files = FakeTrashStore(), FakeFiles()
        self.publisher = RecordingPublisher(self.clock, producer="trash")
        self.settings = TrashSettings(claim_lease_seconds=LEASE, purge_batch_size=3)
        self.trash = self.replica()

    def replica(self) -> Trash:
        """Another trash replica on the same store (its own replica id)."""
        return bootstrap(self.settings, store=self.store, publisher=self.publisher, clock=self.clock,
                         files=self.files, wall_clock=self.wall)

    async def delete_files(self, user_id: str, count: int) -> list[str]:
        ids = []
        for n in range(count):
            item_id = f"{user_id}-t{n}"
            await self.trash.handlers.file_deleted(make_event(FileDeleted(
                file_type="GPX", name=f"track{n}.gpx", category="tracks", tombstone_version_id=item_id,
                last_version_id=f"{user_id}-v{n}", size=10, deleted_at=DELETED_AT, tombstone_update_ms=n),
                user_id=user_id, producer="files", occurred_at=DELETED_AT))
            ids.append(item_id)
        return ids

    def past_retention(self) -> None:
        self.clock.advance(timedelta(days=31))

    def past_lease(self) -> None:
        self.wall.advance(timedelta(seconds=LEASE + 1))


@pytest.fixture
def world() -> World:
    return World()


async def test_expired_items_are_purged_with_one_event_each_and_a_rerun_changes_nothing(world: World) -> None:
    ids = await world.delete_files("u1", 5) + await world.delete_files("u2", 2)
    assert await world.trash.purger.run_once() == 0  # 30 days not passed
    world.past_retention()
    assert await world.trash.purger.run_once() == 7
    assert world.store.purged_ids() == sorted(ids) and world.store.items == {} and world.store.claims == {}
    assert {e.data["reason"] for e in world.store.events()} == {"expired"}
    assert world.publisher.handed == []  # no client waits on expiry
    world.past_lease()
    assert await world.trash.purger.run_once() == 0
    assert world.store.purged_ids() == sorted(ids)


@pytest.mark.parametrize("crash_in", ["write_batches", "remove_items", "release_many"])
async def test_a_crash_at_any_step_is_finished_by_a_takeover_with_one_event_per_item(world: World,
                                                                                    crash_in: str) -> None:
    """write_batches: claims won, no events recorded; remove_items: events recorded, items still
    in the trash; release_many: items gone, claims left behind."""
    ids = await world.delete_files("u1", 3)  # one purge batch
    world.past_retention()
    world.store.crash_in = crash_in
    with pytest.raises(Crash):
        await world.trash.purger.run_once()
    # before the lease passes nobody touches the claimed items, this replica or another
    other = world.replica()
    assert await other.purger.run_once() == 0
    world.past_lease()
    await other.purger.run_once()
    assert world.store.purged_ids() == sorted(ids)  # each item's event exactly once
    assert world.store.items == {} and world.store.claims == {}
    await other.purger.run_once()
    await world.trash.purger.run_once()
    assert world.store.purged_ids() == sorted(ids)


async def test_two_replicas_purging_the_same_items_write_one_event_per_item(world: World) -> None:
    ids = await world.delete_files("u1", 4)
    items = await world.store.of_user("u1")
    first = await world.trash.purger.purge(items, "deleted")
    second = await world.replica().purger.purge(items, "deleted")
    assert sorted(first) == sorted(ids) and second == []
    assert world.store.purged_ids() == sorted(ids)


async def test_delete_now_purges_and_hands_over_to_files_before_answering(world: World) -> None:
    [item_id] = await world.delete_files("u1", 1)
    with pytest.raises(ItemNotFound):
        await world.trash.items.delete_now("u2", item_id)  # not that user's
    await world.trash.items.delete_now("u1", item_id)
    assert world.store.purged_ids() == [item_id]
    assert [(t, [decode_value(e).type for e in entries]) for t, entries in world.publisher.handed] == \
        [("files", ["trash-item-purged"])]
    with pytest.raises(ItemNotFound):
        await world.trash.items.delete_now("u1", item_id)


async def test_empty_purges_everything_and_records_trash_emptied(world: World) -> None:
    ids = await world.delete_files("u1", 7)  # more than one purge batch
    assert await world.trash.items.empty("u1") == {"purged": 7, "skipped": 0}
    assert world.store.purged_ids() == sorted(ids)
    assert [e.data["item_count"] for e in world.store.events("trash-emptied")] == [7]


async def test_restore_goes_through_files_and_holds_off_purges_meanwhile(world: World) -> None:
    first, second = await world.delete_files("u1", 2)
    item, answer = await world.trash.items.restore("u1", first)
    assert world.files.restored == [first] and answer == {"version_id": f"v-{first}"}
    assert first not in world.store.items and world.store.claims == {}
    # a restore under way: the purge skips the item, and a second restore is told so
    await world.store.claim_one({"_id": second, "user_id": "u1", "action": "restore", "batch_id": None,
                                 "claimed_by": "elsewhere", "claimed_at": world.wall.now()})
    assert await world.trash.purger.purge([world.store.items[second]], "deleted") == []
    with pytest.raises(RestoreInProgress):
        await world.trash.items.restore("u1", second)
    with pytest.raises(RestoreInProgress):
        await world.trash.items.delete_now("u1", second)
    assert world.store.events() == []


async def test_a_refused_or_unanswered_restore_leaves_the_item_in_the_trash(world: World) -> None:
    [item_id] = await world.delete_files("u1", 1)
    world.files.down = True
    with pytest.raises(RestoreUnavailable):
        await world.trash.items.restore("u1", item_id)
    world.files.down = False
    world.files.refuse = RestoreRefused("over quota", code="quota_exceeded", details={"limit": 5}, files_status=413)
    with pytest.raises(RestoreRefused) as refused:
        await world.trash.items.restore("u1", item_id)
    assert item_id in world.store.items and world.store.claims == {}
    answer = native_error(refused.value)
    assert (answer.status, answer.body()) == (413, {"error": {"code": "quota_exceeded", "message": "over quota",
                                                              "limit": 5}})
    failed = native_error(RestoreRefused("boom", code="internal", details={}, files_status=500))
    assert failed.status == 502


def test_domain_errors_answer_as_the_api_always_did() -> None:
    for error, status in ((ItemNotFound("x"), 404), (RestoreInProgress("x"), 409), (RestoreUnavailable("x"), 503)):
        assert (native_error(error).status, native_error(error).code) == (status, error.code)


def _uploaded(user_id: str, name: str, at: datetime, file_type: str = "GPX") -> Any:
    return make_event(FileUploaded(file_type=file_type, name=name, version_id=f"v-{name}-{at.isoformat()}", size=1,
                                   checksum="c", updated_at=at), user_id=user_id, producer="files", occurred_at=at)


async def test_a_batch_of_uploads_takes_revived_files_out_of_the_trash_with_one_lookup_per_user_and_type(
        world: World) -> None:
    await world.delete_files("u1", 3)  # track0..2.gpx, deleted at DELETED_AT
    await world.delete_files("u2", 1)
    looked_up: list[tuple[str, str, list[str]]] = []
    removed: list[list[str]] = []
    items_named, remove_items = world.store.items_named, world.store.remove_items

    async def counting_lookup(user_id: str, file_type: str, names: list[str]) -> list[dict[str, Any]]:
        looked_up.append((user_id, file_type, names))
        return await items_named(user_id, file_type, names)

    async def counting_remove(item_ids: list[str]) -> None:
        removed.append(sorted(item_ids))
        await remove_items(item_ids)
    world.store.items_named, world.store.remove_items = counting_lookup, counting_remove  # type: ignore[method-assign]
    later, earlier = DELETED_AT + timedelta(minutes=1), DELETED_AT - timedelta(minutes=1)
    await world.trash.handlers.files_uploaded([
        _uploaded("u1", "track0.gpx", later),      # revives track0
        _uploaded("u1", "track1.gpx", earlier),    # uploaded before its delete: stays in the trash
        _uploaded("u1", "track0.gpx", earlier),    # an older upload of the same name in the batch
        _uploaded("u1", "new.gpx", later),         # a new file: nothing to take out
        _uploaded("u1", "track2.gpx", later, file_type="FAVOURITES"),  # another type of that name
        _uploaded("u2", "track0.gpx", later),      # another user
    ])
    assert sorted(looked_up) == [("u1", "FAVOURITES", ["track2.gpx"]),
                                 ("u1", "GPX", ["new.gpx", "track0.gpx", "track1.gpx"]),
                                 ("u2", "GPX", ["track0.gpx"])]
    assert sorted(removed) == [["u1-t0"], ["u2-t0"]]
    assert sorted(world.store.items) == ["u1-t1", "u1-t2"]
    removed.clear()
    await world.trash.handlers.files_uploaded([_uploaded("u1", "new.gpx", later)])  # revives nothing: no delete
    assert removed == [] and sorted(world.store.items) == ["u1-t1", "u1-t2"]
