"""The services rely on MongoDB's single-document atomicity: conditional updates (quota
reservations, claims, state transitions) and concurrent increments. FerretDB alone does not
give it; the local stack's front end (infra/ferretdb/serialize.go) must."""

import asyncio
import uuid

from pymongo import AsyncMongoClient


async def test_concurrent_increments_are_never_lost(stack):
    clients = [AsyncMongoClient(stack.mongo_url, maxPoolSize=10) for _ in range(4)]
    collection = clients[0][f"{stack.db_prefix}atomicity_test"]["counters"]
    doc_id = uuid.uuid4().hex
    await collection.insert_one({"_id": doc_id, "n": 0})
    try:
        await asyncio.gather(*(c[f"{stack.db_prefix}atomicity_test"]["counters"].update_one(
            {"_id": doc_id}, {"$inc": {"n": 1}}) for c in clients for _ in range(40)))
        assert (await collection.find_one({"_id": doc_id}))["n"] == 160
    finally:
        await collection.delete_one({"_id": doc_id})
        for c in clients:
            await c.close()


async def test_a_conditional_update_wins_exactly_as_often_as_the_condition_allows(stack):
    clients = [AsyncMongoClient(stack.mongo_url, maxPoolSize=10) for _ in range(4)]
    collection = clients[0][f"{stack.db_prefix}atomicity_test"]["quota"]
    doc_id = uuid.uuid4().hex
    await collection.insert_one({"_id": doc_id, "used": 0})
    try:
        results = await asyncio.gather(*(c[f"{stack.db_prefix}atomicity_test"]["quota"].update_one(
            {"_id": doc_id, "used": {"$lte": 90}}, {"$inc": {"used": 10}}) for c in clients for _ in range(15)))
        assert sum(r.modified_count for r in results) == 10
        assert (await collection.find_one({"_id": doc_id}))["used"] == 100
    finally:
        await collection.delete_one({"_id": doc_id})
        for c in clients:
            await c.close()
