"""Trash items, purge/restore claims and purge batches in the trash service's own database.

Why claims are documents of their own: an insert with a given `_id` succeeds for exactly one
writer on any MongoDB-protocol server, and one insert command claims a whole chunk of items
(those whose claim already exists come back as duplicate keys). FerretDB alone is not atomic
for conditional updates; the local stack's front end (infra/ferretdb/serialize.go) makes it so,
but a claim needs neither. One claim per item (`_id` = item id) means one purge or restore per
item, whatever the number of replicas."""

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from osmcloud_common.mongo import delete_all, delete_by_ids, existing_ids, id_chunks, insert_new
from osmcloud_common.outbox import new_document_with_events

Documents = AsyncCollection[dict[str, Any]]


class TrashStore:
    def __init__(self, items: Documents, claims: Documents, batches: Documents, empties: Documents) -> None:
        self.items, self.claims, self.batches, self.empties = items, claims, batches, empties

    async def create_indexes(self) -> None:
        await self.items.create_index([("user_id", ASCENDING), ("deleted_at", ASCENDING)])
        await self.items.create_index([("user_id", ASCENDING), ("type", ASCENDING), ("name", ASCENDING)])
        await self.items.create_index([("expires_at", ASCENDING)])
        await self.claims.create_index([("claimed_at", ASCENDING)])
        await self.claims.create_index([("user_id", ASCENDING)])

    # ------------------------------------------------------------ items
    async def add(self, item: dict[str, Any]) -> None:
        """Idempotent: the item's id is the tombstone version, so a redelivered event adds nothing."""
        try:
            await self.items.insert_one(item)
        except DuplicateKeyError:
            pass

    async def items_named(self, user_id: str, file_type: str, names: list[str]) -> list[dict[str, Any]]:
        """The user's trash items of these names of one type (id, name, deleted_at): a lookup in
        the (user_id, type, name) index, also on FerretDB, which pushes down equality and `$in`
        of strings (a `$or` of conditions it does not: that reads every item in the trash)."""
        return [doc for part in id_chunks(names) async for doc in self.items.find(
            {"user_id": user_id, "type": file_type, "name": {"$in": list(part)}}, {"name": 1, "deleted_at": 1})]

    async def of_user(self, user_id: str) -> list[dict[str, Any]]:
        return await self.items.find({"user_id": user_id}).sort("deleted_at", -1).to_list(None)

    async def item(self, item_id: str) -> dict[str, Any] | None:
        return await self.items.find_one({"_id": item_id})

    async def items_of_files(self, user_id: str, names: list[str]) -> list[dict[str, Any]]:
        """The user's trash items of any of these file names (all types)."""
        if not names:
            return []
        return await self.items.find({"user_id": user_id, "name": {"$in": names}}).to_list(None)

    async def purged_in_a_batch(self, item_ids: list[str]) -> set[str]:
        """Which of these items a recent purge batch carried (batches are kept a few minutes
        after their events went out: long enough for files to have applied them)."""
        if not item_ids:
            return set()
        found: set[str] = set()
        async for batch in self.batches.find({"item_ids": {"$in": item_ids}}, {"item_ids": 1}):
            found.update(set(batch["item_ids"]) & set(item_ids))
        return found

    async def remove_item(self, item_id: str) -> None:
        await self.items.delete_one({"_id": item_id})

    async def remove_items(self, item_ids: list[str]) -> None:
        await delete_by_ids(self.items, item_ids)

    async def remove_user(self, user_id: str) -> int:
        removed = await delete_all(self.items, {"user_id": user_id})
        await delete_all(self.claims, {"user_id": user_id})
        return removed

    async def existing(self, item_ids: list[str]) -> set[str]:
        return await existing_ids(self.items, item_ids)

    async def due(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        return await self.items.find({"expires_at": {"$lte": now}}).limit(limit).to_list(None)

    async def count(self) -> int:
        return await self.items.estimated_document_count()

    # ------------------------------------------------------------ "empty trash" marks
    async def mark_emptied(self, user_id: str, at: datetime) -> None:
        """Remembers when the user last emptied the trash (a later time replaces an earlier)."""
        try:
            await self.empties.insert_one({"_id": user_id, "user_id": user_id, "emptied_at": at})
        except DuplicateKeyError:
            await self.empties.update_one({"_id": user_id, "emptied_at": {"$lt": at}}, {"$set": {"emptied_at": at}})

    async def emptied_since(self, user_id: str, at: datetime) -> bool:
        """Whether the user emptied the trash at or after `at`."""
        return await self.empties.find_one({"_id": user_id, "emptied_at": {"$gte": at}}, {"_id": 1}) is not None

    # ------------------------------------------------------------ claims
    async def claim_many(self, claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Inserts claims; returns those that were won (the others' items are claimed already)."""
        return await insert_new(self.claims, claims)

    async def claim_one(self, claim: dict[str, Any]) -> bool:
        try:
            await self.claims.insert_one(claim)
            return True
        except DuplicateKeyError:
            return False

    async def claim(self, item_id: str) -> dict[str, Any] | None:
        return await self.claims.find_one({"_id": item_id})

    async def release(self, item_id: str, action: str) -> None:
        await self.claims.delete_one({"_id": item_id, "action": action})

    async def release_many(self, item_ids: list[str]) -> None:
        await delete_by_ids(self.claims, item_ids)

    async def stale_claims(self, older_than: datetime) -> list[dict[str, Any]]:
        return await self.claims.find({"claimed_at": {"$lt": older_than}}).to_list(None)

    # ------------------------------------------------------------ purge batches (the events)
    async def write_batches(self, batches: list[tuple[str, str, list[str], list[dict[str, Any]]]], created_at: datetime,
                            written_at: datetime) -> set[str]:
        """Purge batches (batch id, user id, item ids, events), each document with its events,
        in one insert; returns the ids written now (the others existed already, their events
        written by whoever inserted them)."""
        docs = [new_document_with_events({"_id": batch_id, "user_id": user_id, "item_ids": item_ids,
                                          "created_at": created_at, "written_at": written_at}, events)
                for batch_id, user_id, item_ids, events in batches]
        return {d["_id"] for d in await insert_new(self.batches, docs)}

    async def forget_relayed_batches(self, written_before: datetime) -> int:
        """Batches whose events Kafka has acknowledged, kept until no claim of theirs can
        be taken over any more (so a takeover never writes a batch a second time)."""
        result = await self.batches.delete_many({"_outbox_pending": {"$exists": False},
                                                 "written_at": {"$lt": written_before}})
        return result.deleted_count
