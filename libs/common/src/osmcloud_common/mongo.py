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
