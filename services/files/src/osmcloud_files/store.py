"""The files service's storage adapter: heads (one per file), versions, and each account's
entitlement projection and usage — all in files' own database."""

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from osmcloud_common.events import Entitlement
from osmcloud_common.outbox import new_document_with_events, with_events

from .domain import FileRef


class HeadMoved(Exception):
    """The file's head is not the one the caller based its change on."""


class FilesStore:
    def __init__(self, heads, versions, accounts) -> None:
        self.heads, self.versions, self.accounts = heads, versions, accounts

    async def create_indexes(self) -> None:
        await self.heads.create_index([("user_id", ASCENDING), ("type", ASCENDING), ("name", ASCENDING)])
        await self.versions.create_index([("user_id", ASCENDING), ("type", ASCENDING), ("name", ASCENDING),
                                          ("updated_ms", DESCENDING)])

    # ------------------------------------------------------------ accounts
    async def account(self, user_id: str) -> dict[str, Any]:
        doc = await self.accounts.find_one({"_id": user_id}, {"_outbox": 0})
        return doc or {"_id": user_id, "entitlement": None, "used_bytes": 0, "file_count": 0,
                       "reserved_bytes": 0, "committed_bytes": 0, "usage_seq": 0}

    async def set_entitlement(self, user_id: str, entitlement: Entitlement, as_of: datetime) -> None:
        """Applies billing's latest word; an older event never overrides a newer one."""
        await self._ensure_account(user_id)
        await self.accounts.update_one(
            {"_id": user_id, "$or": [{"entitlement_as_of": None}, {"entitlement_as_of": {"$lte": as_of}}]},
            {"$set": {"entitlement": entitlement.model_dump(), "entitlement_as_of": as_of}})

    async def _ensure_account(self, user_id: str) -> None:
        try:
            await self.accounts.insert_one({"_id": user_id, "user_id": user_id, "entitlement": None, "entitlement_as_of": None,
                                            "used_bytes": 0, "file_count": 0, "reserved_bytes": 0,
                                            "committed_bytes": 0, "usage_seq": 0})
        except DuplicateKeyError:
            pass

    async def reserve(self, user_id: str, quota: int, amount: int) -> bool:
        """Atomically reserves `amount` bytes unless used + reserved would pass the quota."""
        result = await self.accounts.update_one(
            {"_id": user_id, "entitlement.quota_bytes": quota, "committed_bytes": {"$lte": quota - amount}},
            {"$inc": {"committed_bytes": amount, "reserved_bytes": amount}})
        return result.modified_count == 1

    async def release(self, user_id: str, amount: int) -> None:
        if amount:
            await self.accounts.update_one({"_id": user_id},
                                           {"$inc": {"committed_bytes": -amount, "reserved_bytes": -amount}})

    async def settle_usage(self, user_id: str, delta_bytes: int, delta_files: int, reserved: int,
                           make_event) -> dict[str, Any]:
        """Moves a reservation into usage and records `storage-usage-changed` with the new
        absolute figures in the same write (optimistic on `usage_seq`, so figures are exact)."""
        while True:
            doc = await self.account(user_id)
            seq = doc.get("usage_seq", 0)
            used, files = doc["used_bytes"] + delta_bytes, doc["file_count"] + delta_files
            quota = (doc.get("entitlement") or {}).get("quota_bytes")
            update = with_events(
                {"$set": {"used_bytes": used, "file_count": files},
                 "$inc": {"usage_seq": 1, "committed_bytes": delta_bytes - reserved, "reserved_bytes": -reserved}},
                [make_event(seq + 1, used, files, quota)])
            result = await self.accounts.update_one({"_id": user_id, "usage_seq": seq}, update)
            if result.modified_count == 1:
                return {"used_bytes": used, "file_count": files, "quota_bytes": quota}

    # ------------------------------------------------------------ files and versions
    async def head(self, ref: FileRef) -> dict[str, Any] | None:
        return await self.heads.find_one({"_id": ref.key}, {"_outbox": 0})

    async def add_version(self, version: dict[str, Any]) -> None:
        await self.versions.insert_one(version)

    async def remove_version(self, version_id: str) -> None:
        await self.versions.delete_one({"_id": version_id})

    async def version(self, ref: FileRef, version_id: str) -> dict[str, Any] | None:
        return await self.versions.find_one({"_id": version_id, "user_id": ref.user_id, "type": ref.file_type,
                                             "name": ref.name})

    async def move_head(self, ref: FileRef, expected_version_id: str | None, head: dict[str, Any],
                        events: list[dict]) -> None:
        """Points the file at a new head version if its head is still `expected_version_id`
        (None: the file must not exist yet). Records `events` in the same write."""
        if expected_version_id is None:
            doc = {"_id": ref.key, "user_id": ref.user_id, "type": ref.file_type, "name": ref.name,
                   "category": ref.category, "head": head}
            try:
                await self.heads.insert_one(new_document_with_events(doc, events))
                return
            except DuplicateKeyError:
                raise HeadMoved()
        result = await self.heads.update_one({"_id": ref.key, "head.version_id": expected_version_id},
                                             with_events({"$set": {"head": head}}, events))
        if result.modified_count != 1:
            raise HeadMoved()

    async def live_heads(self, user_id: str, types: list[str] | None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"user_id": user_id, "head.deleted": False}
        if types:
            query["type"] = {"$in": types}
        return await self.heads.find(query, {"_outbox": 0}).sort([("type", 1), ("name", 1)]).to_list(None)

    async def history(self, ref: FileRef) -> list[dict[str, Any]]:
        return await self.versions.find({"user_id": ref.user_id, "type": ref.file_type, "name": ref.name}
                                        ).sort("updated_ms", -1).to_list(None)
