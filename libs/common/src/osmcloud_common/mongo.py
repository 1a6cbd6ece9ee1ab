"""MongoDB through PyMongo's async API (Motor is end-of-life). Only features that both
MongoDB and FerretDB support: no multi-document transactions, change streams or TTL."""

import asyncio
import weakref

from pymongo import AsyncMongoClient


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


class SerializedCollection:
    """A collection whose single-document updates run one at a time per document `_id`
    within this process.

    FerretDB's SQLite backend (the local stack) applies an update as read, modify, write
    without a transaction (FerretDB issue #3040): two concurrent `$inc` on one document lose
    one increment, two conditional updates on the same condition both succeed, and the outbox
    relay's `$pullAll` can overwrite a change written a moment before. Serializing the
    updates of each document in the process makes them atomic again for a single replica;
    MongoDB is atomic on its own and this only costs a lock per document. Updates whose
    filter names no `_id` are passed through unchanged."""

    def __init__(self, collection) -> None:
        self._collection = collection
        self._locks: weakref.WeakValueDictionary = weakref.WeakValueDictionary()

    def _lock(self, filter_: dict) -> asyncio.Lock | None:
        key = filter_.get("_id") if isinstance(filter_, dict) else None
        if key is None or isinstance(key, dict):
            return None
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    async def update_one(self, filter_, update, *args, **kwargs):
        lock = self._lock(filter_)
        if lock is None:
            return await self._collection.update_one(filter_, update, *args, **kwargs)
        async with lock:
            return await self._collection.update_one(filter_, update, *args, **kwargs)

    async def find_one_and_update(self, filter_, update, *args, **kwargs):
        lock = self._lock(filter_)
        if lock is None:
            return await self._collection.find_one_and_update(filter_, update, *args, **kwargs)
        async with lock:
            return await self._collection.find_one_and_update(filter_, update, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._collection, name)
