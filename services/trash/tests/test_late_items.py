"""A delete whose event reaches trash only after the user emptied the trash (trash was away
when files answered the delete; Kafka brings the event later) is purged on arrival: emptying
the trash never leaves behind what was deleted before it (found by the chaos run, issue 21)."""

from datetime import UTC, datetime, timedelta

from osmcloud_trash.handlers import add_deleted

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class FakeStore:
    def __init__(self, emptied_at=None):
        self.items, self.emptied_at = {}, emptied_at

    async def add(self, item):
        self.items.setdefault(item["_id"], item)

    async def emptied_since(self, user_id, at):
        return self.emptied_at is not None and self.emptied_at >= at


class FakePurger:
    def __init__(self, store):
        self.store, self.purged = store, []

    async def purge(self, items, reason):
        for item in items:
            self.store.items.pop(item["_id"], None)
            self.purged.append((item["_id"], reason))
        return [i["_id"] for i in items]


ITEM = {"_id": "marker-1", "user_id": "u1", "type": "GPX", "name": "a.gpx", "deleted_at": T0 - timedelta(days=1)}


async def test_an_item_deleted_before_the_last_empty_is_purged_on_arrival():
    store = FakeStore(emptied_at=T0)
    purger = FakePurger(store)
    await add_deleted(store, purger, dict(ITEM), T0 - timedelta(seconds=5))
    assert purger.purged == [("marker-1", "emptied")] and store.items == {}


async def test_an_item_whose_event_happened_after_the_last_empty_stays():
    # e.g. a delete marker that became the head again when its newer version was deleted for
    # good after the empty: deleted long ago, but back in the trash only now
    store = FakeStore(emptied_at=T0)
    purger = FakePurger(store)
    await add_deleted(store, purger, dict(ITEM), T0 + timedelta(seconds=5))
    assert purger.purged == [] and list(store.items) == ["marker-1"]


async def test_an_item_of_a_user_who_never_emptied_stays():
    store = FakeStore()
    purger = FakePurger(store)
    await add_deleted(store, purger, dict(ITEM), T0)
    assert purger.purged == [] and list(store.items) == ["marker-1"]
