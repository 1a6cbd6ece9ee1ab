"""The filter emulation SerializedCollection uses on FerretDB, checked against MongoDB's rules."""

import asyncio

import pytest

from osmcloud_common.mongo import SerializedCollection, match_filter

DOC = {"_id": "u", "n": 5, "head": {"version_id": "v1", "deleted": False}, "gone": None,
       "ops": {"op1": {"bytes": 0, "expires": 10.5, "floor": None}}, "tags": ["a", "b"],
       "pending": [{"op": "x", "bytes": 3}], "_outbox": [], "entitlement": {"quota_bytes": 100}}


@pytest.mark.parametrize("filter_,expected", [
    ({"n": 5}, True), ({"n": 6}, False),
    ({"head.version_id": "v1"}, True), ({"head.version_id": "v2"}, False),
    ({"head": None}, False), ({"gone": None}, True), ({"missing": None}, True), ({"frozen": None}, True),
    ({"n": {"$lte": 5}}, True), ({"n": {"$lte": 4}}, False), ({"n": {"$gt": 4}}, True), ({"n": {"$gt": 5}}, False),
    ({"missing": {"$gt": 0}}, False), ({"ops.op1.expires": {"$gt": 10}}, True), ({"ops.op1.bytes": 0}, True),
    ({"ops.op2": {"$exists": True}}, False), ({"ops.op1": {"$exists": True}}, True),
    ({"ops.op1.floor": None}, True),
    ({"_outbox": {"$size": 0}}, True), ({"tags": {"$size": 2}}, True), ({"tags": "a"}, True), ({"tags": "z"}, False),
    ({"pending.op": "x"}, True), ({"pending.op": "y"}, False),
    ({"$or": [{"n": 1}, {"head.deleted": False}]}, True), ({"$or": [{"n": 1}, {"n": 2}]}, False),
    ({"entitlement.quota_bytes": 100, "n": {"$lte": 100 - 95}}, True),
    ({"n": {"$ne": 5}}, False), ({"n": {"$in": [5]}}, None), ({"$where": "x"}, None),
])
def test_filters_match_as_mongodb_would(filter_, expected):
    assert match_filter(DOC, filter_) is expected


class FakeFerret:
    """A collection that is as non-atomic as FerretDB on SQLite: read, yield, write."""

    def __init__(self):
        self.docs = {"k": {"_id": "k", "n": 0}}
        self.scans = 0

    class database:
        class client:
            class admin:
                @staticmethod
                async def command(name):
                    return {"ferretdbVersion": "1.24.2"}

    async def find_one(self, filter_, projection=None):
        if set(filter_) != {"_id"}:
            self.scans += 1
        doc = self.docs.get(filter_["_id"])
        return dict(doc) if doc and match_filter(doc, {k: v for k, v in filter_.items() if k != "_id"}) else None

    async def update_one(self, filter_, update):
        doc = await self.find_one(filter_)
        await asyncio.sleep(0)  # another request runs here
        if doc is None:
            return type("R", (), {"modified_count": 0})()
        for field, amount in update.get("$inc", {}).items():
            doc[field] = doc.get(field, 0) + amount
        self.docs[doc["_id"]] = doc
        return type("R", (), {"modified_count": 1})()


async def test_serialized_updates_lose_nothing_and_scan_nothing():
    raw = FakeFerret()
    await asyncio.gather(*(raw.update_one({"_id": "k"}, {"$inc": {"n": 1}}) for _ in range(50)))
    assert raw.docs["k"]["n"] < 50  # the failure mode being fixed

    raw = FakeFerret()
    serialized = SerializedCollection(raw)
    results = await asyncio.gather(*(serialized.update_one({"_id": "k", "n": {"$lte": 9}}, {"$inc": {"n": 1}})
                                     for _ in range(50)))
    assert raw.docs["k"]["n"] == 10 and sum(r.modified_count for r in results) == 10
    assert raw.scans == 0


def test_range_conditions_compare_dates_and_strings_like_mongodb():
    from datetime import UTC, datetime, timedelta

    from osmcloud_common.mongo import match_filter
    earlier = datetime(2026, 1, 1, tzinfo=UTC)
    doc = {"as_of": earlier, "name": "b", "n": 3}
    later = earlier + timedelta(days=1)
    assert match_filter(doc, {"as_of": {"$lte": later}}) is True
    assert match_filter(doc, {"as_of": {"$gt": later}}) is False
    assert match_filter(doc, {"as_of": {"$lte": later.replace(tzinfo=None)}}) is True  # naive = UTC
    assert match_filter(doc, {"$or": [{"as_of": None}, {"as_of": {"$lte": later}}]}) is True
    assert match_filter(doc, {"name": {"$gt": "a"}}) is True
    assert match_filter(doc, {"n": {"$lte": "9"}}) is False  # a number never matches a string bound
