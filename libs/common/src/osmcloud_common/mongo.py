"""MongoDB through PyMongo's async API (Motor is end-of-life). Only features that both
MongoDB and FerretDB support: no multi-document transactions, change streams or TTL."""

import asyncio

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
