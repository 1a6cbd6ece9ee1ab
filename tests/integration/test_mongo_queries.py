"""Equality and `$in` filters (strings, booleans, ids) return exactly what MongoDB's rules say. The local stack's
FerretDB build answers them from indexes (infra/ferretdb/_added/internal/backends/sqlite/pushdown.go, patch 0001):
these tests catch a pushed-down condition that drops a document it should return —
arrays holding the value, strings SQLite might render differently, `_id` mixed with other
conditions, ObjectIds — or one that returns too much; and deletes by _id (which that
build carries out without reading the documents) delete exactly the documents named."""

import asyncio
import contextlib
import uuid
from datetime import datetime, timedelta

import pytest
from bson import ObjectId
from pymongo import ASCENDING, AsyncMongoClient

ODD_NAMES = ["plain.gpx", "tracks/2024 é ü 漢字.gpx", 'quote"d.gpx', "back\\slash.gpx", "<tag>&amp;.gpx",
             "line\nbreak.gpx", "tab\t.gpx", "emoji 🗺.gpx", "\u2028sep.gpx", ""]


def reference_match(doc: dict, filter_: dict) -> bool:
    """MongoDB's meaning of {field: value} / {field: {$in: [...]}} on top-level fields:
    equal, or an array holding an equal element."""
    for field, condition in filter_.items():
        wanted = condition["$in"] if isinstance(condition, dict) else [condition]
        value = doc.get(field, _MISSING)
        candidates = value if isinstance(value, list) else [value]
        if not any(type(c) is type(w) and c == w for c in candidates for w in wanted):
            return False
    return True


_MISSING = object()


@contextlib.asynccontextmanager
async def fresh_collection(stack, indexes: list, docs: list[dict]):
    """A fresh collection with these indexes and documents, dropped afterwards."""
    client = AsyncMongoClient(stack.mongo_url)
    collection = client[f"{stack.db_prefix}query_test"][f"c{uuid.uuid4().hex[:8]}"]
    for index in indexes:
        await collection.create_index(index)
    await collection.insert_many(docs)
    await asyncio.sleep(1.5)  # the FerretDB build adds its extra indexes within a second
    try:
        yield collection
    finally:
        await collection.drop()
        await client.close()


@pytest.fixture
async def docs(stack):
    docs = []
    for i, name in enumerate(ODD_NAMES):
        for user in ("u1", "u2"):
            docs.append({"_id": f"{user}-{i}", "user_id": user, "type": "GPX" if i % 2 else "FAV", "name": name})
    for i, flag in enumerate([True, False, [True], [False, 1], 1, 0, "true"]):
        docs.append({"_id": f"flag-{i}", "user_id": "u4", "flag": flag})
    docs += [
        {"_id": ObjectId(), "user_id": "u1", "type": "GPX", "name": "plain.gpx"},
        {"_id": "array-user", "user_id": ["u1", "u3"], "type": "GPX", "name": "plain.gpx"},
        {"_id": "array-name", "user_id": "u2", "type": "FAV", "name": ["x", "plain.gpx"]},
        {"_id": "number-user", "user_id": 1, "type": "GPX", "name": "plain.gpx"},
        {"_id": "no-user", "type": "GPX", "name": "plain.gpx"},
        {"_id": "nested", "user_id": {"id": "u1"}, "type": "GPX", "name": "plain.gpx"},
    ]
    async with fresh_collection(stack, [[("user_id", ASCENDING), ("type", ASCENDING), ("name", ASCENDING)], "flag"],
                               docs) as collection:
        yield collection, docs


FILTERS = [
    {"user_id": "u1"},
    {"user_id": "u3"},
    {"user_id": {"$in": ["u2", "u3"]}},
    {"user_id": "u1", "type": "GPX", "name": "plain.gpx"},
    {"user_id": "u2", "type": "FAV", "name": {"$in": ["plain.gpx", "x"]}},
    {"user_id": "u1", "name": {"$in": ODD_NAMES}},
    *({"name": name} for name in ODD_NAMES),
    {"user_id": {"$in": []}},
    {"flag": True},
    {"flag": False},
    {"flag": {"$in": [True, "true"]}},
    {"user_id": "u4", "flag": False},
    {"_id": "u1-3"},
    {"_id": {"$in": ["u1-1", "u2-2", "missing", "array-user"]}},
    {"_id": "u1-1", "user_id": "u2"},
    {"_id": {"$in": ["u1-1", "u2-1"]}, "user_id": "u2"},
]


@pytest.mark.parametrize("filter_", FILTERS, ids=[repr(f)[:60] for f in FILTERS])
async def test_find_returns_exactly_the_matching_documents(docs, filter_):
    collection, all_docs = docs
    expected = sorted(str(d["_id"]) for d in all_docs if reference_match(d, filter_))
    found = sorted([str(d["_id"]) async for d in collection.find(filter_)])
    assert found == expected
    assert await collection.count_documents(filter_) == len(expected)


async def test_find_by_object_ids(docs):
    collection, all_docs = docs
    oid = next(d["_id"] for d in all_docs if isinstance(d["_id"], ObjectId))
    assert [d["_id"] async for d in collection.find({"_id": oid})] == [oid]
    assert [d["_id"] async for d in collection.find({"_id": {"$in": [oid, ObjectId()]}})] == [oid]
    assert [d["_id"] async for d in collection.find({"_id": str(oid)})] == []


async def test_delete_and_update_by_pushed_down_filters_touch_exactly_the_matches(docs):
    collection, all_docs = docs
    doomed = ["u1-0", "u1-4", "array-user", "nope"]
    assert (await collection.delete_many({"_id": {"$in": doomed}})).deleted_count == 3
    oid = next(d["_id"] for d in all_docs if isinstance(d["_id"], ObjectId))
    assert (await collection.delete_one({"_id": "nope"})).deleted_count == 0
    assert (await collection.delete_one({"_id": "u2-5"})).deleted_count == 1
    assert (await collection.delete_many({"_id": oid})).deleted_count == 1
    assert (await collection.delete_many({"_id": {"$in": [str(oid), "u2-6", "u2-6"]}})).deleted_count == 1
    left = {str(d["_id"]) async for d in collection.find({})}
    assert left == {str(d["_id"]) for d in all_docs} - set(doomed) - {"u2-5", str(oid), "u2-6"}

    filter_ = {"user_id": "u2", "name": {"$in": ["plain.gpx", 'quote"d.gpx']}}
    expected = {str(d["_id"]) for d in all_docs if reference_match(d, filter_)}
    assert (await collection.update_many(filter_, {"$set": {"touched": True}})).modified_count == len(expected)
    assert {str(d["_id"]) async for d in collection.find({"touched": True})} == expected


# ---------------------------------------------------------------- date ranges
# {f: {$lt|$lte|$gt|$gte: date}} is pushed down too, on the integers sjson stores dates as,
# from a partial index the FerretDB build adds beside a single-field index: these catch a
# date it drops (before 1970, before 2001 when the milliseconds have fewer digits, inside
# an array) or a non-date it returns (numbers, strings, null, missing, documents).

NOW = datetime(2026, 12, 5, 12, 0, 0)
RANGE_OPS = {"$lt": lambda a, b: a < b, "$lte": lambda a, b: a <= b,
             "$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b}


def reference_range_match(doc: dict, filter_: dict) -> bool:
    """MongoDB's meaning of range conditions on dates: a date (or an array holding one)
    satisfying every operator; values of other types never match a date."""
    for field, condition in filter_.items():
        value = doc.get(field, _MISSING)
        if not isinstance(condition, dict):
            if value != condition:
                return False
            continue
        candidates = value if isinstance(value, list) else [value]
        if not any(isinstance(c, datetime) and all(RANGE_OPS[op](c, bound) for op, bound in condition.items())
                   for c in candidates):
            return False
    return True


@pytest.fixture
async def dated(stack):
    docs = [{"_id": f"later-{i}", "user_id": "u1", "expires_at": NOW + timedelta(days=1 + i % 40),
             "deleted_at": NOW - timedelta(days=i % 40)} for i in range(400)]
    docs += [
        {"_id": "due", "user_id": "u2", "expires_at": NOW - timedelta(seconds=1), "deleted_at": NOW},
        {"_id": "exactly-now", "user_id": "u2", "expires_at": NOW, "deleted_at": NOW - timedelta(days=30)},
        {"_id": "year-1999", "user_id": "u2", "expires_at": datetime(1999, 1, 1), "deleted_at": datetime(1998, 12, 1)},
        {"_id": "year-1960", "user_id": "u3", "expires_at": datetime(1960, 1, 1), "deleted_at": datetime(1959, 1, 1)},
        {"_id": "epoch", "user_id": "u3", "expires_at": datetime(1970, 1, 1)},
        {"_id": "array", "user_id": "u3", "expires_at": [NOW + timedelta(days=90), NOW - timedelta(days=5)]},
        {"_id": "array-later", "user_id": "u3", "expires_at": [NOW + timedelta(days=90)]},
        {"_id": "number", "user_id": "u2", "expires_at": 5, "deleted_at": 5},
        {"_id": "big-number", "user_id": "u2", "expires_at": 2**40},
        {"_id": "double", "user_id": "u2", "expires_at": 1.5},
        {"_id": "string", "user_id": "u2", "expires_at": "2020-01-01"},
        {"_id": "null", "user_id": "u2", "expires_at": None},
        {"_id": "missing", "user_id": "u2"},
        {"_id": "document", "user_id": "u2", "expires_at": {"at": NOW - timedelta(days=1)}},
    ]
    async with fresh_collection(stack, ["expires_at", [("user_id", ASCENDING), ("deleted_at", ASCENDING)]],
                               docs) as collection:
        yield collection, docs


RANGE_FILTERS = [
    {"expires_at": {"$lte": NOW}},
    {"expires_at": {"$lt": NOW}},
    {"expires_at": {"$gt": NOW + timedelta(days=30)}},
    {"expires_at": {"$gte": NOW}},
    {"expires_at": {"$gte": datetime(1965, 1, 1), "$lt": datetime(2001, 1, 1)}},
    {"expires_at": {"$lt": datetime(1969, 12, 31)}},
    {"user_id": "u2", "deleted_at": {"$lte": NOW - timedelta(days=1)}},
    {"user_id": "u1", "deleted_at": {"$gt": NOW - timedelta(days=3)}},
]


@pytest.mark.parametrize("filter_", RANGE_FILTERS, ids=[repr(f)[:70] for f in RANGE_FILTERS])
async def test_date_ranges_return_exactly_the_matching_documents(dated, filter_):
    collection, all_docs = dated
    expected = sorted(d["_id"] for d in all_docs if reference_range_match(d, filter_))
    found = sorted([d["_id"] async for d in collection.find(filter_)])
    assert found == expected
    with_limit = [d["_id"] async for d in collection.find(filter_).limit(3)]
    assert len(with_limit) == min(3, len(expected)) and set(with_limit) <= set(expected)


async def test_delete_by_date_range_removes_exactly_the_matches(dated):
    collection, all_docs = dated
    filter_ = {"expires_at": {"$lte": NOW}}
    expected = {d["_id"] for d in all_docs if reference_range_match(d, filter_)}
    assert "year-1999" in expected and "array" in expected and "number" not in expected
    assert (await collection.delete_many(filter_)).deleted_count == len(expected)
    assert {d["_id"] async for d in collection.find({})} == {d["_id"] for d in all_docs} - expected


async def test_deleting_an_accounts_documents_beyond_the_servers_variable_limit(stack):
    """Our FerretDB build names every matched document in one SQL statement, and SQLite takes
    at most 32,766 variables: a `delete_many` of a large account's versions failed ("too many
    SQL variables"), and with it "delete all my data" and the account's erasure.
    `delete_user_data` deletes in chunks; another user's documents stay."""
    from osmcloud_common.mongo import delete_user_data

    client = AsyncMongoClient(stack.mongo_url)
    db = client[f"{stack.db_prefix}delete_test_{uuid.uuid4().hex[:8]}"]
    try:
        many = 33_000
        for start in range(0, many, 5_000):
            await db["versions"].insert_many([{"_id": f"big-{i}", "user_id": "big", "seq": i}
                                              for i in range(start, min(start + 5_000, many))])
        await db["versions"].insert_many([{"_id": f"other-{i}", "user_id": "other"} for i in range(10)])
        await db["heads"].insert_one({"_id": "big/h", "user_id": "big"})
        assert await delete_user_data(db, "big") == many + 1
        assert await db["versions"].count_documents({}) == 10
        assert await db["heads"].count_documents({}) == 0
    finally:
        await client.drop_database(db.name)
        await client.close()
