"""Trash items in the trash service's own database."""

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError


class TrashStore:
    def __init__(self, items) -> None:
        self.items = items

    async def create_indexes(self) -> None:
        await self.items.create_index([("user_id", ASCENDING), ("deleted_at", ASCENDING)])
        await self.items.create_index([("user_id", ASCENDING), ("type", ASCENDING), ("name", ASCENDING)])
        await self.items.create_index([("expires_at", ASCENDING)])

    async def add(self, item: dict[str, Any]) -> None:
        """Idempotent: the item's id is the tombstone version, so a redelivered event adds nothing."""
        try:
            await self.items.insert_one(item)
        except DuplicateKeyError:
            pass

    async def remove_file(self, user_id: str, file_type: str, name: str, before: datetime) -> int:
        """A new upload to a trashed name takes it out of the trash."""
        result = await self.items.delete_many({"user_id": user_id, "type": file_type, "name": name,
                                               "deleted_at": {"$lte": before}})
        return result.deleted_count

    async def of_user(self, user_id: str) -> list[dict[str, Any]]:
        return await self.items.find({"user_id": user_id}).sort("deleted_at", -1).to_list(None)
