"""MongoDB through PyMongo's async API (Motor is end-of-life). Only features that both
MongoDB and FerretDB support: no multi-document transactions, change streams or TTL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeAlias, TypeVar

from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from . import tracing
from .keyed_locks import KeyedLocks

DUPLICATE_KEY = 11000

Document: TypeAlias = dict[str, Any]
MongoClient: TypeAlias = AsyncMongoClient[Document]
Database: TypeAlias = AsyncDatabase[Document]
# build(doc) of SerializedCollection.modify: None (no change) or (guard, update)
ModifyPlan: TypeAlias = tuple[Mapping[str, Any], Mapping[str, Any]] | None
T = TypeVar("T")


def connect(url: str) -> MongoClient:
    """With traces on (tracing.configure before this), every command is a span."""
    return AsyncMongoClient(url, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000, tz_aware=True,
                            uuidRepresentation="standard", event_listeners=tracing.mongo_listeners())


async def mongo_reachable(client: MongoClient) -> bool:
    try:
        await asyncio.wait_for(client.admin.command("ping"), timeout=3)
        return True
    except Exception:
        return False


# Convention: every document that holds a user's data carries a `user_id` field (processed-
# event records and dead letters included), so that removing an account's data is one generic
# sweep over every collection of the service's own database.
DELETE_CHUNK = 10_000  # documents one delete names at most (see delete_all)


async def delete_all(collection: Collection, filter_: Mapping[str, Any], chunk: int = DELETE_CHUNK) -> int:
    """Deletes every document `filter_` matches, at most `chunk` a command: our FerretDB build
    deletes by naming each matched document in one SQL statement, and SQLite takes at most
    32,766 variables, so one `delete_many` of a large account's versions failed ("too many
    SQL variables"). Returns how many went."""
    removed = 0
    while True:
        ids = [doc["_id"] async for doc in collection.find(dict(filter_), {"_id": 1}).limit(chunk)]
        if not ids:
            return removed
        removed += (await collection.delete_many({**filter_, "_id": {"$in": ids}})).deleted_count


async def delete_user_data(database: Database, user_id: str) -> int:
    """Removes every document of `user_id` from a service's database; idempotent."""
    removed = 0
    for name in await database.list_collection_names():
        removed += await delete_all(database[name], {"user_id": user_id})
    return removed


async def insert_new(collection: Collection, docs: list[Document]) -> list[Document]:
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


def id_chunks(ids: Sequence[T], size: int = 250) -> Iterator[Sequence[T]]:
    """`ids` in parts for `{_id: {$in: part}}`. A few hundred a round trip: FerretDB checks
    every document it reads against every id of an `$in` (quadratic in the part's size),
    MongoDB hardly cares."""
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


async def delete_by_ids(collection: Collection, ids: Sequence[Any]) -> int:
    """Deletes documents by _id; returns how many were deleted."""
    deleted = 0
    for part in id_chunks(ids):
        deleted += (await collection.delete_many({"_id": {"$in": part}})).deleted_count
    return deleted


async def find_by_ids(collection: Collection, ids: Sequence[Any],
                      projection: Mapping[str, Any] | None = None) -> list[Document]:
    """The documents with these ids that exist, in no particular order."""
    return [doc for part in id_chunks(list(ids)) async for doc in collection.find({"_id": {"$in": part}}, projection)]


async def existing_ids(collection: Collection, ids: Sequence[Any]) -> set[Any]:
    """Which of `ids` exist."""
    return {doc["_id"] for doc in await find_by_ids(collection, ids, {"_id": 1})}


class SerializedCollection:
    """A collection whose single-document updates run one at a time per document `_id`
    within this process, and whose conditional writes leave their whole filter to the server.

    Why that is atomic everywhere: MongoDB applies a single-document write atomically.
    FerretDB 1.24 on SQLite applies an update as read, modify, write without a transaction
    (FerretDB issue #3040) — two concurrent `$inc` lose one increment, two conditional updates
    on one condition both succeed — but the local stack's FerretDB runs behind our wire
    front end (infra/ferretdb/serialize.go), which lets one write command per collection run
    at a time, so a compare-and-set (the filter's conditions and the update together) holds
    across every process and replica. Our FerretDB build answers a filter naming `_id` from
    the _id index whatever else it holds, so nothing is scanned.

    The per-document lock only spares this process's own writes from losing races to each
    other (and `modify` from retrying)."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection
        self._locks = KeyedLocks()

    def _lock(self, filter_: Mapping[str, Any]) -> asyncio.Lock | None:
        key = filter_.get("_id") if isinstance(filter_, dict) else None
        if key is None or isinstance(key, dict):
            return None
        return self._locks(key)

    async def _write(self, method: str, filter_: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        """The collection's `method`, under the document's lock when the filter names one `_id`."""
        call = getattr(self._collection, method)
        lock = self._lock(filter_)
        if lock is None:
            return await call(filter_, *args, **kwargs)
        async with lock:
            return await call(filter_, *args, **kwargs)

    async def update_one(self, filter_: Mapping[str, Any], update: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._write("update_one", filter_, update, *args, **kwargs)

    async def find_one_and_update(self, filter_: Mapping[str, Any], update: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._write("find_one_and_update", filter_, update, *args, **kwargs)

    async def modify(self, doc_id: Any, build: Callable[[Document | None], ModifyPlan],
                     guess: Document | None = None) -> Document | None:
        """An atomic read-modify-write of one document; returns the document after the write,
        or None when `build` wants no change. `build(doc)` (doc is None if missing) returns
        None or (guard, update): `guard` is the part of the filter that must still hold when
        the update is written; it goes with the write, and a write that lost a race (to
        another replica) is retried from a fresh read. `guess`: the document as the caller's
        last write left it, tried first instead of a read — a guess the guard refuses, or
        one `build` wants no change of, is read afresh, so it saves a read and never decides."""
        lock = self._lock({"_id": doc_id})
        # an _id that is a document has no lock: the guarded write and its retry alone decide
        async with lock if lock is not None else contextlib.nullcontext():
            while True:
                guessed, guess = guess, None
                plan = build(guessed if guessed is not None else await self._collection.find_one({"_id": doc_id}))
                if plan is None:
                    if guessed is not None:  # a guess never decides: read the document
                        continue
                    return None
                guard, update = plan
                after = await self._collection.find_one_and_update(
                    {"_id": doc_id, **guard}, update, return_document=ReturnDocument.AFTER)
                if after is not None:
                    return after

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)


# a service's collection: PyMongo's, or one wrapped to serialize its writes (SerializedCollection)
Collection: TypeAlias = AsyncCollection[Document] | SerializedCollection
