import asyncio
from datetime import UTC, datetime

from osmcloud_common.events import AccountRegistered, make_event
from osmcloud_common.outbox import (
    CLEAR_BATCH,
    OUTBOX_FIELD,
    PENDING_FIELD,
    OutboxRelay,
    new_document_with_events,
    outbox_entry,
    with_events,
)


def _entry(user="u1"):
    event = make_event(AccountRegistered(email="a@b.cd"), user_id=user, producer="auth",
                       occurred_at=datetime(2026, 1, 1, tzinfo=UTC))
    return outbox_entry(event, "pre.")


def test_entry_goes_to_the_producing_domains_topic_keyed_by_user():
    entry = _entry()
    assert entry["topic"] == "pre.auth" and entry["key"] == "u1"
    assert all(isinstance(v, str) for v in entry.values())


def test_events_ride_in_the_same_write_as_the_change():
    entry = _entry()
    update = with_events({"$set": {"a": 1}, "$inc": {"n": 1}}, [entry])
    assert update == {"$set": {"a": 1, PENDING_FIELD: True}, "$inc": {"n": 1},
                      "$push": {OUTBOX_FIELD: {"$each": [entry]}}}
    doc = new_document_with_events({"_id": "x"}, [entry])
    assert doc[OUTBOX_FIELD] == [entry] and doc[PENDING_FIELD] is True


class FakeCollection:
    """Just enough of a collection for the relay: find by the pending flag (and _id $in),
    $pullAll, $unset, and bulk writes of UpdateOne (each statement as update_one)."""

    def __init__(self, docs):
        self.docs = {d["_id"]: d for d in docs}
        self.commands: list[tuple[str, int]] = []  # (name, statements) of each write

    def find(self, query, projection=None):
        ids = query.get("_id", {}).get("$in") if isinstance(query.get("_id"), dict) else None

        async def gen():
            for d in list(self.docs.values()):
                if d.get(PENDING_FIELD) is True and (ids is None or d["_id"] in ids):
                    yield d
        return gen()

    async def bulk_write(self, requests, ordered=True):
        self.commands.append(("bulk_write", len(requests)))
        modified = 0
        for op in requests:
            modified += self._update(op._filter, op._doc).modified_count
        return type("R", (), {"modified_count": modified})()

    async def find_one(self, query, projection=None):
        doc = self.docs.get(query["_id"])
        return doc if doc is not None and doc.get(PENDING_FIELD) is True else None

    async def update_one(self, query, update):
        self.commands.append(("update_one", 1))
        return self._update(query, update)

    def _update(self, query, update):
        doc = self.docs[query["_id"]]
        if OUTBOX_FIELD in query and query[OUTBOX_FIELD] != doc.get(OUTBOX_FIELD) and not isinstance(
                query[OUTBOX_FIELD], dict):
            return type("R", (), {"modified_count": 0})()
        if "$unset" in update and OUTBOX_FIELD in update["$unset"]:
            doc.pop(OUTBOX_FIELD, None)
            doc.pop(PENDING_FIELD, None)
            return type("R", (), {"modified_count": 1})()
        if "$pullAll" in update:
            doc[OUTBOX_FIELD] = [e for e in doc[OUTBOX_FIELD] if e not in update["$pullAll"][OUTBOX_FIELD]]
        if "$unset" in update and not doc[OUTBOX_FIELD]:
            doc.pop(PENDING_FIELD, None)
        return type("R", (), {"modified_count": 1})()


class FlakyProducer:
    def __init__(self, fail_first: int):
        self.fail_first, self.sent = fail_first, []
        self._more = asyncio.Event()

    async def publish(self, topic, key, value, headers=None):
        if self.fail_first:
            self.fail_first -= 1
            raise ConnectionError("kafka away")
        self.sent.append((topic, key, headers["event_id"]))
        self._more.set()

    async def publish_many(self, messages):
        if self.fail_first:
            self.fail_first -= 1
            raise ConnectionError("kafka away")
        self.sent += [(topic, key, headers["event_id"]) for topic, key, _, headers in messages]
        self._more.set()

    async def sent_at_least(self, count: int) -> None:
        """Returns once `count` events were sent (by a loop running in the background)."""
        async def wait() -> None:
            while len(self.sent) < count:
                self._more.clear()
                await self._more.wait()
        await asyncio.wait_for(wait(), timeout=5)


async def test_relay_publishes_then_clears_and_keeps_events_while_kafka_is_away():
    entries = [_entry("u1"), _entry("u1")]
    collection = FakeCollection([new_document_with_events({"_id": 1}, entries), {"_id": 2}])
    producer = FlakyProducer(fail_first=1)
    relay = OutboxRelay(producer, [collection])
    try:
        await relay.flush()
        raise AssertionError("flush should fail while Kafka is away")
    except ConnectionError:
        pass
    assert collection.docs[1][OUTBOX_FIELD] == entries  # nothing lost
    assert await relay.flush() == 2
    assert [s[2] for s in producer.sent] == [e["id"] for e in entries]
    assert not collection.docs[1].get(OUTBOX_FIELD) and PENDING_FIELD not in collection.docs[1]
    assert await relay.flush() == 0


class SlowScanCollection(FakeCollection):
    """A collection whose scan for pending documents hangs, as a big FerretDB scan does."""

    def __init__(self, docs):
        super().__init__(docs)
        self.scan_started, self.scan_release = asyncio.Event(), asyncio.Event()

    def find(self, query, projection=None):
        parent = super().find(query, projection)

        async def gen():
            self.scan_started.set()
            await self.scan_release.wait()
            async for d in parent:
                yield d
        return gen()


async def test_a_named_document_is_published_at_once_even_while_a_scan_is_slow():
    old = _entry("u0")
    collection = SlowScanCollection([new_document_with_events({"_id": "old"}, [old])])
    producer = FlakyProducer(fail_first=0)
    relay = OutboxRelay(producer, [collection], poll_seconds=0.05)
    task = asyncio.create_task(relay.run())
    try:
        await collection.scan_started.wait()  # the start-up scan is now stuck
        fresh = _entry("u1")
        collection.docs["new"] = new_document_with_events({"_id": "new"}, [fresh])
        relay.wake(collection, "new")
        await producer.sent_at_least(1)
        assert [s[2] for s in producer.sent] == [fresh["id"]]
        collection.scan_release.set()  # the scan ends and finds the leftover
        await producer.sent_at_least(2)
        assert [s[2] for s in producer.sent] == [fresh["id"], old["id"]]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class CountingCollection(FakeCollection):
    def __init__(self, docs):
        super().__init__(docs)
        self.reads = 0

    async def find_one(self, query, projection=None):
        self.reads += 1
        return await super().find_one(query, projection)


async def test_a_document_named_with_its_outbox_is_published_without_a_read_and_in_order():
    first, second = _entry("u1"), _entry("u1")
    collection = CountingCollection([])
    producer = FlakyProducer(fail_first=0)
    relay = OutboxRelay(producer, [collection], poll_seconds=60)
    assert await relay.flush() == 0  # the start-up scan finds nothing
    collection.docs["d"] = new_document_with_events({"_id": "d"}, [first])
    relay.wake(collection, "d", [first])  # what the insert wrote
    await relay._flush_round()
    assert len(producer.sent) == 1 and collection.reads == 0 and PENDING_FIELD not in collection.docs["d"]
    # an entry written after the writer's outbox was taken: the clearing write's
    # condition fails, only the given entries go, the later one waits for its own wake
    collection.docs["d"] = new_document_with_events({"_id": "d"}, [first, second])
    relay.wake(collection, "d", [first])
    await relay._flush_round()
    assert len(producer.sent) == 2
    assert collection.docs["d"][OUTBOX_FIELD] == [second] and collection.docs["d"][PENDING_FIELD]
    relay.wake(collection, "d", [second])
    await relay._flush_round()
    assert [s[2] for s in producer.sent] == [first["id"], first["id"], second["id"]]
    assert not collection.docs["d"].get(OUTBOX_FIELD) and PENDING_FIELD not in collection.docs["d"]
    # named twice before the relay ran: the first outbox may be out of date, so it reads
    collection.docs["e"] = new_document_with_events({"_id": "e"}, [first, second])
    relay.wake(collection, "e", [first])
    relay.wake(collection, "e", [first, second])
    await relay._flush_round()
    assert len(producer.sent) == 5 and collection.reads == 1 and not collection.docs["e"].get(OUTBOX_FIELD)


async def test_a_wake_up_whose_document_a_scan_flushed_first_publishes_nothing_again():
    entry = _entry("u1")
    collection = CountingCollection([new_document_with_events({"_id": "d"}, [entry])])
    producer = FlakyProducer(fail_first=0)
    relay = OutboxRelay(producer, [collection], poll_seconds=60)
    relay.wake(collection, "d", [entry])
    assert await relay.flush() == 1  # the scan got there before the named flush
    await relay._flush_round()
    assert [s[2] for s in producer.sent] == [entry["id"]]


async def test_the_documents_named_in_one_round_are_published_side_by_side():
    entries = {doc_id: _entry("u1") for doc_id in ("a", "b", "c")}
    collection = CountingCollection([new_document_with_events({"_id": d}, [e]) for d, e in entries.items()])

    class TogetherProducer:
        """Acknowledges only once every document's send is in flight, as one request would."""
        def __init__(self):
            self.sent, self.calls, self.all_in = [], 0, asyncio.Event()

        async def publish_many(self, messages):
            self.calls += 1
            if self.calls == len(entries):
                self.all_in.set()
            await asyncio.wait_for(self.all_in.wait(), timeout=1)
            self.sent += [headers["event_id"] for _, _, _, headers in messages]

    producer = TogetherProducer()
    relay = OutboxRelay(producer, [collection], poll_seconds=60)
    for doc_id, entry in entries.items():
        relay.wake(collection, doc_id, [entry])
    await relay._flush_round()  # TogetherProducer times out unless the three sends overlap
    assert sorted(producer.sent) == sorted(e["id"] for e in entries.values())
    assert all(not collection.docs[d].get(OUTBOX_FIELD) for d in entries)


async def test_a_round_clears_its_documents_outboxes_in_one_write_per_collection_and_batch():
    heads = CountingCollection([new_document_with_events({"_id": f"h{i}"}, [_entry("u1")]) for i in range(20)])
    accounts = CountingCollection([new_document_with_events({"_id": "u1"}, [_entry("u1")])])
    producer = FlakyProducer(fail_first=0)
    relay = OutboxRelay(producer, [heads, accounts], poll_seconds=60)
    for doc_id, doc in heads.docs.items():
        relay.wake(heads, doc_id, list(doc[OUTBOX_FIELD]))
    relay.wake(accounts, "u1")  # outbox unknown: read
    await relay._flush_round()
    assert len(producer.sent) == 21 and relay.published == 21
    assert heads.commands == [("bulk_write", CLEAR_BATCH), ("bulk_write", 20 - CLEAR_BATCH)]
    assert accounts.commands == [("update_one", 1)]  # one document: the plain update, as before
    docs = [*heads.docs.values(), *accounts.docs.values()]
    assert all(OUTBOX_FIELD not in d and PENDING_FIELD not in d for d in docs)
    assert relay._in_flight == set()


async def test_an_event_added_between_publish_and_clear_stays_and_is_published_later():
    first = {d: _entry("u1") for d in ("a", "b", "c")}
    later = _entry("u1")
    collection = CountingCollection([new_document_with_events({"_id": d}, [e]) for d, e in first.items()])

    class AddingProducer(FlakyProducer):
        """Kafka acknowledges; meanwhile a writer adds an event to "b"."""
        async def publish_many(self, messages):
            await super().publish_many(messages)
            doc = collection.docs["b"]
            if later not in doc[OUTBOX_FIELD]:
                doc[OUTBOX_FIELD] = [*doc[OUTBOX_FIELD], later]

    producer = AddingProducer(fail_first=0)
    relay = OutboxRelay(producer, [collection], poll_seconds=60)
    for doc_id, entry in first.items():
        relay.wake(collection, doc_id, [entry])
    await relay._flush_round()
    # one bulk write; its "b" statement matched nothing, so "b" alone fell back: the published
    # entry pulled, the flag kept for the event added meanwhile
    assert collection.commands == [("bulk_write", 3), ("update_one", 1), ("update_one", 1)]
    assert collection.docs["b"][OUTBOX_FIELD] == [later] and collection.docs["b"][PENDING_FIELD] is True
    assert all(OUTBOX_FIELD not in collection.docs[d] for d in ("a", "c"))
    relay.wake(collection, "b", [later])  # the writer's own wake-up
    await relay._flush_round()
    assert sorted(s[2] for s in producer.sent) == sorted([*(e["id"] for e in first.values()), later["id"]])
    assert OUTBOX_FIELD not in collection.docs["b"] and PENDING_FIELD not in collection.docs["b"]


async def test_a_failed_clear_leaves_the_round_pending_for_the_scan_which_publishes_again():
    entries = {d: _entry("u1") for d in ("a", "b")}
    collection = CountingCollection([new_document_with_events({"_id": d}, [e]) for d, e in entries.items()])

    async def bulk_write_down(requests, ordered=True):
        raise ConnectionError("mongo away")
    collection.bulk_write = bulk_write_down
    producer = FlakyProducer(fail_first=0)
    relay = OutboxRelay(producer, [collection], poll_seconds=60)
    for doc_id, entry in entries.items():
        relay.wake(collection, doc_id, [entry])
    await relay._flush_round()
    assert len(producer.sent) == 2 and relay._scan_wake.is_set() and relay._in_flight == set()
    assert all(collection.docs[d][PENDING_FIELD] for d in entries)  # nothing lost
    del collection.bulk_write  # Mongo back: the scan publishes them again (at least once)
    assert await relay.flush() == 2
    assert sorted(s[2] for s in producer.sent) == sorted([e["id"] for e in entries.values()] * 2)
    assert all(OUTBOX_FIELD not in collection.docs[d] for d in entries)


async def test_a_document_the_scan_named_while_a_round_held_it_is_flushed_after_the_clear():
    entry, later = _entry("u1"), _entry("u1")
    collection = CountingCollection([new_document_with_events({"_id": d}, [entry]) for d in ("a", "b")])
    relay: OutboxRelay

    class ScanMeanwhile(FlakyProducer):
        """While the round publishes, a writer adds to "a" and the scan reaches it."""
        async def publish_many(self, messages):
            await super().publish_many(messages)
            if not any(s[2] == later["id"] for s in self.sent) and later not in collection.docs["a"][OUTBOX_FIELD]:
                collection.docs["a"][OUTBOX_FIELD] = [*collection.docs["a"][OUTBOX_FIELD], later]
                assert await relay._flush_doc(collection, "a") == 0  # held by the round: looks again after

    producer = ScanMeanwhile(fail_first=0)
    relay = OutboxRelay(producer, [collection], poll_seconds=60)
    relay.wake(collection, "a", [entry])
    relay.wake(collection, "b", [entry])
    await relay._flush_round()
    assert [s[2] for s in producer.sent].count(later["id"]) == 1
    assert all(OUTBOX_FIELD not in d and PENDING_FIELD not in d for d in collection.docs.values())
    assert relay._in_flight == set() and relay._again == set()


async def test_a_held_document_the_scan_listed_is_not_read_again_when_the_round_cleared_it():
    entry = _entry("u1")
    collection = CountingCollection([new_document_with_events({"_id": d}, [entry]) for d in ("a", "b")])
    relay: OutboxRelay

    class ScanMeanwhile(FlakyProducer):
        """While the round publishes, the scan lists both pending documents (nothing new)."""
        async def publish_many(self, messages):
            await super().publish_many(messages)
            if len(self.sent) == 2:
                assert await relay.flush() == 0  # both held by the round: marked to look again

    producer = ScanMeanwhile(fail_first=0)
    relay = OutboxRelay(producer, [collection], poll_seconds=60)
    relay.wake(collection, "a", [entry])
    relay.wake(collection, "b", [entry])
    await relay._flush_round()
    # the round's clear matched what it published, which is all the scan saw: no read, no resend
    assert len(producer.sent) == 2 and collection.reads == 0 and collection.commands == [("bulk_write", 2)]
    assert relay._in_flight == set() and relay._again == set()
