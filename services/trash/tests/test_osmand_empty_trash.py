"""EmptyTrash.answer on fakes: which entries reach the purge, and how the rest are answered."""

from osmcloud_trash.empty_trash import EmptyTrash
from osmcloud_trash.files_client import FilesUnavailable
from osmcloud_trash.osmand_rules import TrashEntry

ITEM = {"_id": "t-a", "user_id": "u1", "type": "GPX", "name": "a.gpx", "tombstone_update_ms": 100}
LEGACY = {"_id": "t-old", "user_id": "u1", "type": "GPX", "name": "old.gpx"}  # before items knew the time


class FakeStore:
    def __init__(self, items, batches=()):
        self.items, self.batches = items, set(batches)

    async def items_of_files(self, user_id, names):
        return [i for i in self.items if i["user_id"] == user_id and i["name"] in names]

    async def purged_in_a_batch(self, ids):
        return self.batches & set(ids)

    async def claim(self, item_id):
        return None


class FakePurger:
    def __init__(self):
        self.purged = []

    async def purge(self, items, reason):
        assert reason == "deleted"  # the native delete-now's reason
        self.purged += [i["_id"] for i in items]
        return [i["_id"] for i in items]


class FakeFiles:
    def __init__(self, histories, down=False):
        self.histories, self.down = histories, down

    async def history(self, user_id, file_type, name):
        if self.down:
            raise FilesUnavailable("down")
        return self.histories.get((file_type, name), [])


def trash(items=(ITEM, LEGACY), histories=None, batches=(), down=False):
    purger = FakePurger()
    return EmptyTrash(FakeStore(list(items), batches), purger, FakeFiles(histories or {}, down)), purger


async def statuses(service, entries):
    results = await service.answer("u1", entries)
    return {(r.entry.name, r.entry.updatetime): r.status for r in results}


async def test_an_item_with_that_updatetime_is_purged_without_asking_files():
    service, purger = trash(down=True)
    assert await statuses(service, [TrashEntry("a.gpx", "GPX", 100)]) == {("a.gpx", 100): "deleted"}
    assert purger.purged == ["t-a"]


async def test_an_item_without_a_known_updatetime_is_found_through_files():
    history = {("GPX", "old.gpx"): [{"version_id": "t-old", "updatetime": 50, "deleted": True},
                                    {"version_id": "v1", "updatetime": 40, "deleted": False}]}
    service, purger = trash(histories=history)
    assert await statuses(service, [TrashEntry("old.gpx", "GPX", 50)]) == {("old.gpx", 50): "deleted"}
    assert purger.purged == ["t-old"]


async def test_other_updatetimes_live_files_and_missing_files_purge_nothing():
    history = {("GPX", "a.gpx"): [{"version_id": "t-a", "updatetime": 100, "deleted": True}],
               ("GPX", "live.gpx"): [{"version_id": "v", "updatetime": 7, "deleted": False}]}
    service, purger = trash(histories=history)
    got = await statuses(service, [TrashEntry("a.gpx", "GPX", 99), TrashEntry("live.gpx", "GPX", 7),
                                   TrashEntry("none.gpx", "GPX", 1)])
    assert got == {("a.gpx", 99): "skipped_not_trash", ("live.gpx", 7): "skipped_not_trash",
                   ("none.gpx", 1): "already_missing"}
    assert purger.purged == []


async def test_a_marker_purged_already_is_already_missing():
    history = {("GPX", "b.gpx"): [{"version_id": "t-b", "updatetime": 5, "deleted": True}]}
    service, _ = trash(items=(), histories=history, batches={"t-b"})
    assert await statuses(service, [TrashEntry("b.gpx", "GPX", 5)]) == {("b.gpx", 5): "already_missing"}


async def test_the_same_entry_twice_is_deleted_once():
    service, purger = trash()
    results = await service.answer("u1", [TrashEntry("a.gpx", "GPX", 100), TrashEntry("a.gpx", "GPX", 100)])
    assert sorted(r.status for r in results) == ["already_missing", "deleted"] and purger.purged == ["t-a"]


async def test_files_down_fails_the_undecided_entries_only():
    service, _ = trash(down=True)
    got = await statuses(service, [TrashEntry("a.gpx", "GPX", 100), TrashEntry("x.gpx", "GPX", 1)])
    assert got == {("a.gpx", 100): "deleted", ("x.gpx", 1): "failed"}


async def test_another_users_item_is_not_touched():
    service, purger = trash(items=({**ITEM, "user_id": "u2"},))
    assert await statuses(service, [TrashEntry("a.gpx", "GPX", 100)]) == {("a.gpx", 100): "already_missing"}
    assert purger.purged == []
