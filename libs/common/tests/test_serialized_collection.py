"""SerializedCollection leaves every condition to the server (whose write is the
compare-and-set), serializes this process's writes per document, and retries a lost race."""

import asyncio

from osmcloud_common.mongo import SerializedCollection


class RecordingCollection:
    """Answers like a server that applies each write atomically; records what it was sent."""

    def __init__(self) -> None:
        self.docs = {"k": {"_id": "k", "n": 0}}
        self.sent: list[tuple] = []
        self.in_flight = self.most_in_flight = 0

    def _matches(self, doc, filter_) -> bool:
        return all(doc.get(k) == v if not isinstance(v, dict) else doc.get(k, 0) <= v["$lte"]
                   for k, v in filter_.items())

    async def update_one(self, filter_, update):
        self.sent.append(("update_one", filter_))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0)
        self.in_flight -= 1
        doc = self.docs.get(filter_["_id"])
        if doc is None or not self._matches(doc, filter_):
            return type("R", (), {"modified_count": 0})()
        doc["n"] += update["$inc"]["n"]
        return type("R", (), {"modified_count": 1})()

    async def find_one(self, filter_):
        self.sent.append(("find_one", filter_))
        return dict(self.docs.get(filter_["_id"]) or {}) or None

    async def find_one_and_update(self, filter_, update, return_document=None):
        self.sent.append(("find_one_and_update", filter_))
        doc = self.docs.get(filter_["_id"])
        if doc is None or not self._matches(doc, filter_):
            return None
        doc.update(update["$set"])
        return dict(doc)


async def test_conditions_go_to_the_server_and_writes_of_one_document_wait_for_each_other():
    raw = RecordingCollection()
    serialized = SerializedCollection(raw)
    results = await asyncio.gather(*(serialized.update_one({"_id": "k", "n": {"$lte": 9}}, {"$inc": {"n": 1}})
                                     for _ in range(50)))
    assert raw.docs["k"]["n"] == 10 and sum(r.modified_count for r in results) == 10
    assert all(call == ("update_one", {"_id": "k", "n": {"$lte": 9}}) for call in raw.sent)  # no reads first
    assert raw.most_in_flight == 1


async def test_modify_sends_its_guard_and_retries_a_race_lost_to_another_replica():
    raw = RecordingCollection()
    serialized = SerializedCollection(raw)
    seen = []

    def build(doc):
        seen.append(doc["n"])
        if len(seen) == 1:
            raw.docs["k"]["n"] = 5  # another replica wrote between our read and our write
        return {"n": doc["n"]}, {"$set": {"done": True}}

    after = await serialized.modify("k", build)
    assert after["done"] is True and seen == [0, 5]
    writes = [f for kind, f in raw.sent if kind == "find_one_and_update"]
    assert writes == [{"_id": "k", "n": 0}, {"_id": "k", "n": 5}]


async def test_modify_with_a_current_guess_writes_without_reading():
    raw = RecordingCollection()
    serialized = SerializedCollection(raw)
    after = await serialized.modify("k", lambda doc: ({"n": doc["n"]}, {"$set": {"done": True}}),
                                    {"_id": "k", "n": 0})
    assert after["done"] is True
    assert raw.sent == [("find_one_and_update", {"_id": "k", "n": 0})]


async def test_modify_reads_afresh_when_the_guess_is_stale_or_wants_no_change():
    raw = RecordingCollection()
    raw.docs["k"]["n"] = 3
    serialized = SerializedCollection(raw)
    # stale: the guard refuses the guess, the write is retried from a read
    after = await serialized.modify("k", lambda doc: ({"n": doc["n"]}, {"$set": {"done": True}}),
                                    {"_id": "k", "n": 1})
    assert after["done"] is True
    assert raw.sent == [("find_one_and_update", {"_id": "k", "n": 1}), ("find_one", {"_id": "k"}),
                        ("find_one_and_update", {"_id": "k", "n": 3})]
    # a guess `build` wants no change of is not believed: the document is read
    raw.sent.clear()
    after = await serialized.modify("k", lambda doc: None if doc["n"] != 3 else ({"n": 3}, {"$set": {"again": 1}}),
                                    {"_id": "k", "n": 0})
    assert after["again"] == 1 and raw.sent[0] == ("find_one", {"_id": "k"})
