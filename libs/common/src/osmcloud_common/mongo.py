"""MongoDB through PyMongo's async API (Motor is end-of-life). Only features that both
MongoDB and FerretDB support: no multi-document transactions, change streams or TTL."""

import asyncio
import weakref
from datetime import UTC, datetime

from pymongo import AsyncMongoClient, DeleteOne, ReturnDocument
from pymongo.errors import BulkWriteError
from pymongo.results import UpdateResult

DUPLICATE_KEY = 11000


def connect(url: str) -> AsyncMongoClient:
    return AsyncMongoClient(url, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000, tz_aware=True,
                            uuidRepresentation="standard")


async def mongo_reachable(client: AsyncMongoClient) -> bool:
    try:
        await asyncio.wait_for(client.admin.command("ping"), timeout=3)
        return True
    except Exception:
        return False


# Convention: every document that holds a user's data carries a `user_id` field, so that
# removing an account's data is one generic sweep over the service's own database.
BOOKKEEPING_COLLECTIONS = frozenset({"processed_events", "dead_letters"})


async def delete_user_data(database, user_id: str) -> int:
    """Removes every document of `user_id` from a service's database; idempotent."""
    removed = 0
    for name in await database.list_collection_names():
        if name not in BOOKKEEPING_COLLECTIONS:
            removed += (await database[name].delete_many({"user_id": user_id})).deleted_count
    return removed


async def insert_new(collection, docs: list[dict]) -> list[dict]:
    """Inserts documents in one round trip, skipping those whose _id exists already; returns
    the ones inserted now. A unique _id is how a claim or a once-only record is won: exactly one
    inserter gets each. Any error but a duplicate key is raised."""
    if not docs:
        return []
    try:
        await collection.insert_many(docs, ordered=False)
        return list(docs)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        lost = {e["index"] for e in errors}
        return [d for i, d in enumerate(docs) if i not in lost]


_FERRETDB: dict[int, bool] = {}


async def is_ferretdb(collection) -> bool:
    """Whether the server behind `collection` is FerretDB (asked once per client)."""
    client = collection.database.client
    if id(client) not in _FERRETDB:
        info = await client.admin.command("buildInfo")
        _FERRETDB[id(client)] = "ferretdbVersion" in info or "ferretdbFeatures" in info
    return _FERRETDB[id(client)]


def id_chunks(ids: list, size: int = 250):
    """`ids` in parts for `{_id: {$in: part}}`. A few hundred a round trip: FerretDB checks
    every document it reads against every id of an `$in` (quadratic in the part's size),
    MongoDB hardly cares."""
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


async def delete_by_ids(collection, ids: list) -> int:
    """Deletes documents by _id; returns how many were deleted."""
    deleted = 0
    for part in id_chunks(ids):
        deleted += (await collection.delete_many({"_id": {"$in": part}})).deleted_count
    return deleted


async def find_by_ids(collection, ids: list, projection: dict | None = None) -> list[dict]:
    """The documents with these ids that exist, in no particular order."""
    return [doc for part in id_chunks(list(ids)) async for doc in collection.find({"_id": {"$in": part}}, projection)]


async def existing_ids(collection, ids: list) -> set:
    """Which of `ids` exist."""
    return {doc["_id"] for doc in await find_by_ids(collection, ids, {"_id": 1})}


_MISSING = object()


def _values_at(doc, path: str) -> list:
    """The values a dotted path reaches (arrays of documents are walked, as MongoDB does)."""
    current = [doc]
    for part in path.split("."):
        found = []
        for value in current:
            if isinstance(value, dict):
                if part in value:
                    found.append(value[part])
            elif isinstance(value, list):
                found.extend(v[part] for v in value if isinstance(v, dict) and part in v)
        current = found
    return current


def _comparable(value, arg) -> tuple | None:
    """(value, arg) ready for <, <=, >, >= when MongoDB would compare them (numbers with
    numbers, dates with dates, strings with strings), else None (no match, as in MongoDB)."""
    def kind(x):
        if isinstance(x, bool):
            return None
        if isinstance(x, (int, float)):
            return "number"
        if isinstance(x, datetime):
            return "date"
        if isinstance(x, str):
            return "string"
        return None
    if kind(value) is None or kind(value) != kind(arg):
        return None
    if kind(value) == "date":  # BSON dates are UTC; a naive one means UTC
        value, arg = (d if d.tzinfo else d.replace(tzinfo=UTC) for d in (value, arg))
    return value, arg


def _matches_condition(values: list, condition) -> bool | None:
    """None: an operator this emulation does not know (the caller falls back to the server)."""
    if isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition):
        for op, arg in condition.items():
            if op == "$exists":
                ok = bool(values) == bool(arg)
            elif op in ("$gt", "$gte", "$lt", "$lte"):
                compare = {"$gt": lambda v, a: v > a, "$gte": lambda v, a: v >= a,
                           "$lt": lambda v, a: v < a, "$lte": lambda v, a: v <= a}[op]
                pairs = [_comparable(v, arg) for v in values]
                ok = any(compare(*pair) for pair in pairs if pair is not None)
            elif op == "$size":
                ok = any(isinstance(v, list) and len(v) == arg for v in values)
            elif op == "$ne":
                equal = _matches_condition(values, arg)
                if equal is None:
                    return None
                ok = not equal
            else:
                return None
            if not ok:
                return False
        return True
    if condition is None:
        return not values or any(v is None for v in values)
    return any(v == condition or (isinstance(v, list) and not isinstance(condition, list) and condition in v)
               for v in values)


def match_filter(doc: dict, filter_: dict) -> bool | None:
    """Evaluates a MongoDB filter on a document for the operators the services use in
    single-document updates; None when the filter uses anything else."""
    for key, condition in filter_.items():
        if key == "$or":
            results = [match_filter(doc, branch) for branch in condition]
            if any(r is None for r in results):
                return None
            ok = any(results)
        elif key.startswith("$"):
            return None
        else:
            ok = _matches_condition(_values_at(doc, key), condition)
            if ok is None:
                return None
        if not ok:
            return False
    return True


class SerializedCollection:
    """A collection whose single-document updates run one at a time per document `_id`
    within this process.

    FerretDB's SQLite backend (the local stack) applies an update as read, modify, write
    without a transaction (FerretDB issue #3040): two concurrent `$inc` on one document lose
    one increment, two conditional updates on the same condition both succeed, and the outbox
    relay's `$pullAll` can overwrite a change written a moment before. Serializing the
    updates of each document in the process makes them atomic again for a single replica;
    MongoDB is atomic on its own and this only costs a lock per document.

    On FerretDB, a filter `{"_id": v, ...conditions}` is read by _id and the conditions are
    checked here, under the document's lock (the same compare-and-set); the write names only
    `_id`. (Upstream FerretDB scanned the collection for any filter but exactly {_id: v};
    our build answers such filters from the _id index too, see infra/ferretdb/_overlay.)
    Filters naming no `_id` pass through."""

    def __init__(self, collection) -> None:
        self._collection = collection
        self._locks: weakref.WeakValueDictionary = weakref.WeakValueDictionary()

    async def _is_ferretdb(self) -> bool:
        try:
            return await is_ferretdb(self._collection)
        except Exception:
            return False  # the server cannot be asked right now: asked again next time

    def _lock(self, filter_: dict) -> asyncio.Lock | None:
        key = filter_.get("_id") if isinstance(filter_, dict) else None
        if key is None or isinstance(key, dict):
            return None
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    async def _precheck(self, filter_: dict) -> tuple[dict, bool]:
        """(filter to send, whether it can match): on FerretDB, the extra conditions are
        evaluated here on the document read by _id."""
        if len(filter_) == 1 or not await self._is_ferretdb():
            return filter_, True
        doc = await self._collection.find_one({"_id": filter_["_id"]})
        if doc is None:
            return filter_, False
        verdict = match_filter(doc, {k: v for k, v in filter_.items() if k != "_id"})
        if verdict is None:
            return filter_, True  # unknown operator: let the server decide
        return {"_id": filter_["_id"]}, verdict

    async def update_one(self, filter_, update, *args, **kwargs):
        lock = self._lock(filter_)
        if lock is None:
            return await self._collection.update_one(filter_, update, *args, **kwargs)
        async with lock:
            sent, possible = await self._precheck(filter_)
            if not possible and not kwargs.get("upsert"):
                return UpdateResult({"n": 0, "nModified": 0}, acknowledged=True)
            return await self._collection.update_one(sent if possible else filter_, update, *args, **kwargs)

    async def find_one_and_update(self, filter_, update, *args, **kwargs):
        lock = self._lock(filter_)
        if lock is None:
            return await self._collection.find_one_and_update(filter_, update, *args, **kwargs)
        async with lock:
            sent, possible = await self._precheck(filter_)
            if not possible and not kwargs.get("upsert"):
                return None
            return await self._collection.find_one_and_update(sent if possible else filter_, update, *args, **kwargs)

    async def delete_each(self, filters: list[dict]) -> int:
        """Many conditional single-document deletes ({_id, ...conditions} each), each as
        atomic as delete_one, in one round trip; returns how many were deleted. On FerretDB
        the conditions are checked here on the documents read by _id (under this process's
        locks) and only their ids go to the server, which answers `$in` on _id from its
        index but would read every document once per conditional filter."""
        if not filters:
            return 0
        if not await self._is_ferretdb():
            return (await self._collection.bulk_write([DeleteOne(f) for f in filters], ordered=False)).deleted_count
        locks = sorted({f["_id"]: self._lock(f) for f in filters}.items())
        for _, lock in locks:
            await lock.acquire()
        try:
            found = {doc["_id"]: doc for doc in await find_by_ids(self._collection, [f["_id"] for f in filters])}
            doomed = [f["_id"] for f in filters
                      if f["_id"] in found and match_filter(found[f["_id"]], {k: v for k, v in f.items() if k != "_id"})]
            return await delete_by_ids(self._collection, doomed)
        finally:
            for _, lock in locks:
                lock.release()

    async def modify(self, doc_id, build):
        """An atomic read-modify-write of one document; returns the document after the write,
        or None when `build` wants no change. `build(doc)` (doc is None if missing) returns
        None or (guard, update): `guard` is the part of the filter that must still hold when
        the update is written. On FerretDB the guard holds by construction (the document was
        read under this process's lock) and the write names only _id; on MongoDB the guard
        goes with the write, and a write that lost a race is retried from a fresh read."""
        lock = self._lock({"_id": doc_id})
        async with lock:
            ferretdb = await self._is_ferretdb()
            while True:
                doc = await self._collection.find_one({"_id": doc_id})
                plan = build(doc)
                if plan is None:
                    return None
                guard, update = plan
                after = await self._collection.find_one_and_update(
                    {"_id": doc_id} if ferretdb else {"_id": doc_id, **guard}, update,
                    return_document=ReturnDocument.AFTER)
                if after is not None or ferretdb:
                    return after

    async def find_one(self, filter_=None, *args, **kwargs):
        if isinstance(filter_, dict) and len(filter_) > 1 and self._lock(filter_) is not None \
                and await self._is_ferretdb() and len(args) <= 1 and set(kwargs) <= {"projection"}:
            doc = await self._collection.find_one({"_id": filter_["_id"]})
            verdict = None if doc is None else match_filter(doc, {k: v for k, v in filter_.items() if k != "_id"})
            if doc is None or verdict is False:
                return None
            if verdict is True:
                return _project(doc, kwargs.get("projection") or (args[0] if args else None))
        return await self._collection.find_one(filter_, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._collection, name)


def _project(doc: dict, projection) -> dict:
    if not projection:
        return doc
    if all(not v for k, v in projection.items() if k != "_id"):
        return {k: v for k, v in doc.items() if k not in projection or (k == "_id" and projection.get("_id", 1))}
    keep = {k for k, v in projection.items() if v}
    return {k: v for k, v in doc.items() if k in keep or (k == "_id" and projection.get("_id", 1))}
