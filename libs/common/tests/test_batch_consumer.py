"""The consumer's batch handlers, on fakes: runs of one type are handed over together across
partitions, each partition's order is kept around events without a batch handler, events of
deleted accounts are dropped, and a batch that keeps failing is applied event by event so
that only the bad event is set aside."""

from datetime import UTC, datetime
from types import SimpleNamespace

from osmcloud_common import kafka
from osmcloud_common.events import FileDeleted, StorageUsageChanged, TrashItemPurged, make_event
from osmcloud_common.kafka import EventConsumer

AT = datetime(2026, 3, 1, tzinfo=UTC)


class FakeCollection:
    def __init__(self):
        self.docs = []

    async def find_one(self, query, projection=None):
        return next((d for d in self.docs if d.get("_id") == query.get("_id")), None)

    async def update_one(self, query, update, upsert=False):
        self.docs.append({"_id": query["_id"]})

    async def insert_one(self, doc):
        self.docs.append(doc)

    def find(self, query, projection=None):
        wanted = set(query["_id"]["$in"])
        docs = [d for d in self.docs if d.get("_id") in wanted]

        class Cursor:
            async def to_list(self, length=None):
                return docs
        return Cursor()

    async def insert_many(self, docs, ordered=True):
        self.docs.extend(docs)


class FakeDatabase(dict):
    def __missing__(self, name):
        self[name] = FakeCollection()
        return self[name]


def purged(user, name):
    return make_event(TrashItemPurged(file_type="GPX", name=name, tombstone_version_id=f"t-{name}", reason="expired"),
                      user_id=user, producer="test", occurred_at=AT)


def usage(user, seq):
    return make_event(StorageUsageChanged(sequence=seq, used_bytes=1, file_count=1), user_id=user, producer="test",
                      occurred_at=AT)


def message(event, offset=0):
    return SimpleNamespace(value=event.to_json().encode(), headers=[], offset=offset)


def consumer_with(log, *, skip=None, fail_on=None):
    async def batch(events):
        if fail_on and any(e.payload().name == fail_on for e in events):
            raise RuntimeError("bad event")
        log.append(("batch", [e.payload().name for e in events]))

    async def single(event):
        log.append(("single", event.payload().sequence))
    return EventConsumer(bootstrap="unused", topic_prefix="t.", group_id="g", database=FakeDatabase(),
                         handlers={"storage-usage-changed": single}, batch_handlers={"trash-item-purged": batch},
                         skip=skip, max_attempts=1)


async def test_runs_of_one_type_go_together_and_each_partition_keeps_its_order():
    log = []
    consumer = consumer_with(log)
    await consumer._handle_partitions({
        "p0": [message(purged("a", "a1")), message(purged("a", "a2")), message(usage("a", 1)),
               message(purged("a", "a3"))],
        "p1": [message(purged("b", "b1")), message(purged("b", "b2"))],
    })
    assert log == [("batch", ["a1", "a2", "b1", "b2"]), ("single", 1), ("batch", ["a3"])]
    assert consumer.handled == 6


async def test_events_of_deleted_accounts_are_dropped_from_a_batch():
    log = []

    async def deleted(event):
        return event.user_id == "gone"
    consumer = consumer_with(log, skip=deleted)
    await consumer._handle_partitions({"p0": [message(purged("gone", "x")), message(purged("kept", "y"))]})
    assert log == [("batch", ["y"])]


async def test_a_failing_batch_is_applied_event_by_event_and_only_the_bad_one_is_set_aside(monkeypatch):
    log = []
    consumer = consumer_with(log, fail_on="bad")

    async def no_sleep(_):
        return None
    monkeypatch.setattr(kafka.asyncio, "sleep", no_sleep)  # the retries' backoff
    await consumer._handle_partitions({"p0": [message(purged("u", "ok1")), message(purged("u", "bad")),
                                              message(purged("u", "ok2"))]})
    assert log == [("batch", ["ok1"]), ("batch", ["ok2"])]
    dead = consumer._dead_letters.docs
    assert len(dead) == 1 and dead[0]["event"]["data"]["name"] == "bad"


async def test_an_unreadable_message_among_batched_ones_is_set_aside():
    log = []
    consumer = consumer_with(log)
    broken = SimpleNamespace(value=b"{not json", headers=[], offset=3)
    await consumer._handle_partitions({"p0": [message(purged("u", "a")), broken, message(purged("u", "b"))]})
    assert log == [("batch", ["a"]), ("batch", ["b"])]
    assert len(consumer._dead_letters.docs) == 1


def test_a_type_cannot_have_both_kinds_of_handler():
    async def h(_):
        return None
    try:
        EventConsumer(bootstrap="x", topic_prefix="t.", group_id="g", database=FakeDatabase(),
                      handlers={"file-deleted": h}, batch_handlers={FileDeleted.event_type: h})
    except ValueError as exc:
        assert "both" in str(exc)
    else:
        raise AssertionError("expected ValueError")
