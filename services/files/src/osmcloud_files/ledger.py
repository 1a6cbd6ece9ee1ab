"""Each account's ledger: one document per account holding usage, quota reservations, the
in-flight operations and the change counter — so every quota decision is one atomic
single-document update (FerretDB has no transactions).

Fields of an account document (besides the entitlement projection, see FilesStore):
  used_bytes, file_count            what the newest version of each live file takes (settled)
  reserved_bytes, reserved_files    held by unfinished operations
  committed_bytes, committed_files  used + reserved: what quota checks compare, never above the plan
  ops.<op_id>                       an unfinished operation: {kind, bytes, files, expires, file,
                                    version_id, blob_key, floor}; the reconciler finishes or undoes
                                    operations whose owner stopped renewing them (crash)
  op_count                          number of entries in ops (cheap "anything in flight?" query)
  change_seq                        last number drawn for the changes feed
  reset_seq                         change_seq when all data was deleted: older cursors must resync
  usage_seq, usage_dirty, usage_published_seq
                                    every change of usage bumps usage_seq and marks it dirty; the
                                    newest figures are then published as storage-usage-changed
  backup_off                        types whose backup the user switched off
  frozen                            the op id of a "delete all my data" in progress
"""

import time
from collections.abc import Callable
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from osmcloud_common.outbox import with_events

OP_TTL_SECONDS = 600.0  # an operation not renewed for this long is taken for dead

UsageEvent = Callable[[int, int, int, int | None], dict]  # (sequence, used, files, quota) -> outbox entry


def _zero_usage(user_id: str) -> dict[str, Any]:
    return {"_id": user_id, "user_id": user_id, "entitlement": None, "entitlement_as_of": None,
            "used_bytes": 0, "file_count": 0, "reserved_bytes": 0, "reserved_files": 0,
            "committed_bytes": 0, "committed_files": 0, "usage_seq": 0, "usage_dirty": False,
            "usage_published_seq": 0, "ops": {}, "op_count": 0, "change_seq": 0, "reset_seq": 0,
            "backup_off": [], "frozen": None}


class Ledger:
    def __init__(self, accounts, now: Callable[[], float] = time.time, ttl: float = OP_TTL_SECONDS) -> None:
        # operational deadlines use the system clock, not the (test-movable) business clock:
        # moving time forward by 30 days in a test must not kill uploads in flight
        self.accounts, self.now, self.ttl = accounts, now, ttl

    async def get(self, user_id: str) -> dict[str, Any]:
        doc = await self.accounts.find_one({"_id": user_id}, {"_outbox": 0})
        return {**_zero_usage(user_id), **(doc or {})}

    # ------------------------------------------------------------ operations
    async def begin(self, user_id: str, op_id: str, op: dict[str, Any], *, quota: int, max_files: int | None,
                    bytes_: int, files: int, floor: int | None = None) -> dict[str, Any] | None:
        """Records an operation and reserves `bytes_` and `files` for it, atomically and only
        if the account stays within `quota` / `max_files` and no "delete all" runs. With
        `floor` (the change_seq the caller last saw) it also draws one change number, which
        is the returned document's change_seq. None when refused."""
        condition: dict[str, Any] = {"_id": user_id, "frozen": None}
        if bytes_:
            condition["entitlement.quota_bytes"] = quota
            condition["committed_bytes"] = {"$lte": quota - bytes_}
        if files and max_files is not None:
            condition["committed_files"] = {"$lte": max_files - files}
        entry = {**op, "bytes": bytes_, "files": files, "expires": self.now() + self.ttl, "floor": floor}
        inc = {"committed_bytes": bytes_, "reserved_bytes": bytes_, "committed_files": files,
               "reserved_files": files, "op_count": 1}
        if floor is not None:
            inc["change_seq"] = 1
        return await self.accounts.find_one_and_update(
            condition, {"$inc": inc, "$set": {f"ops.{op_id}": entry}},
            return_document=ReturnDocument.AFTER)

    async def grow(self, user_id: str, op_id: str, quota: int, more: int) -> bool:
        """Reserves `more` bytes for a streaming upload, within the quota; renews the op."""
        result = await self.accounts.update_one(
            {"_id": user_id, f"ops.{op_id}.expires": {"$gt": self.now()}, "frozen": None,
             "entitlement.quota_bytes": quota, "committed_bytes": {"$lte": quota - more}},
            {"$inc": {"committed_bytes": more, "reserved_bytes": more, f"ops.{op_id}.bytes": more},
             "$set": {f"ops.{op_id}.expires": self.now() + self.ttl}})
        return result.modified_count == 1

    async def renew(self, user_id: str, op_id: str) -> bool:
        result = await self.accounts.update_one(
            {"_id": user_id, f"ops.{op_id}.expires": {"$gt": self.now()}},
            {"$set": {f"ops.{op_id}.expires": self.now() + self.ttl}})
        return result.modified_count == 1

    async def draw(self, user_id: str, op_id: str, floor: int, count: int = 1) -> int | None:
        """Draws `count` change numbers for a live operation (renewing it) and returns the
        last; None if the operation expired or "delete all" runs (the caller must give up)."""
        doc = await self.accounts.find_one_and_update(
            {"_id": user_id, f"ops.{op_id}.expires": {"$gt": self.now()},
             "$or": [{"frozen": None}, {"frozen": op_id}]},
            {"$inc": {"change_seq": count},
             "$set": {f"ops.{op_id}.floor": floor, f"ops.{op_id}.expires": self.now() + self.ttl}},
            return_document=ReturnDocument.AFTER)
        return doc["change_seq"] if doc else None

    async def finish(self, user_id: str, op_id: str, reserved_bytes: int, reserved_files: int,
                     delta_bytes: int = 0, delta_files: int = 0, events: list[dict] | None = None,
                     extra: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Ends an operation: its reservation is replaced by the usage it really changed
        (`delta_*`, 0 to just release). Idempotent: once the op is gone nothing happens and
        None is returned — which is how a second finisher (the reconciler) knows."""
        update: dict[str, Any] = {
            "$inc": {"used_bytes": delta_bytes, "file_count": delta_files,
                     "committed_bytes": delta_bytes - reserved_bytes, "reserved_bytes": -reserved_bytes,
                     "committed_files": delta_files - reserved_files, "reserved_files": -reserved_files,
                     "op_count": -1},
            "$unset": {f"ops.{op_id}": ""}}
        if delta_bytes or delta_files:
            update["$inc"]["usage_seq"] = 1
            update["$set"] = {"usage_dirty": True}
        if extra:
            update.setdefault("$set", {}).update(extra)
        if events:
            update = with_events(update, events)
        return await self.accounts.find_one_and_update(
            {"_id": user_id, f"ops.{op_id}.bytes": reserved_bytes, f"ops.{op_id}.files": reserved_files},
            update, return_document=ReturnDocument.AFTER)

    async def add_events(self, user_id: str, events: list[dict]) -> None:
        if events:
            await self.accounts.update_one({"_id": user_id}, with_events({"$set": {"user_id": user_id}}, events))

    # ------------------------------------------------------------ usage event
    async def publish_usage(self, user_id: str, make_event: UsageEvent) -> bool:
        """Records storage-usage-changed with the account's newest figures if they were not
        published yet. Conditional on usage_seq, so it never publishes stale figures; when it
        loses a race, whoever changed usage since publishes the newer ones."""
        doc = await self.get(user_id)
        if not doc.get("usage_dirty"):
            return False
        seq = doc["usage_seq"]
        quota = (doc.get("entitlement") or {}).get("quota_bytes")
        result = await self.accounts.update_one(
            {"_id": user_id, "usage_seq": seq, "usage_dirty": True},
            with_events({"$set": {"usage_dirty": False, "usage_published_seq": seq}},
                        [make_event(seq, doc["used_bytes"], doc["file_count"], quota)]))
        return result.modified_count == 1

    # ------------------------------------------------------------ settings and "delete all"
    async def ensure(self, user_id: str) -> None:
        try:
            await self.accounts.insert_one(_zero_usage(user_id))
        except DuplicateKeyError:
            pass

    async def set_backup(self, user_id: str, file_type: str, enabled: bool) -> None:
        await self.ensure(user_id)
        op = {"$pullAll": {"backup_off": [file_type]}} if enabled else {"$addToSet": {"backup_off": file_type}}
        await self.accounts.update_one({"_id": user_id}, op)

    async def freeze(self, user_id: str, op_id: str, op: dict[str, Any]) -> bool:
        """Starts "delete all my data": no new operation may begin until it ends."""
        entry = {**op, "bytes": 0, "files": 0, "expires": self.now() + self.ttl, "floor": None}
        result = await self.accounts.update_one(
            {"_id": user_id, "frozen": None},
            {"$set": {"frozen": op_id, f"ops.{op_id}": entry}, "$inc": {"op_count": 1}})
        return result.modified_count == 1

    async def clear_usage(self, user_id: str, op_id: str, events: list[dict]) -> dict[str, Any] | None:
        """Ends "delete all": usage to zero (reservations of operations still in flight stay),
        older cursors must resync, the account is open again. Optimistic on usage_seq."""
        while True:
            doc = await self.get(user_id)
            if op_id not in (doc.get("ops") or {}):
                return None
            update = with_events({
                # the reset takes a change number of its own: cursors below it must resync
                "$set": {"used_bytes": 0, "file_count": 0, "reset_seq": doc["change_seq"] + 1, "frozen": None,
                         "usage_dirty": True},
                "$inc": {"committed_bytes": -doc["used_bytes"], "committed_files": -doc["file_count"],
                         "usage_seq": 1, "op_count": -1, "change_seq": 1},
                "$unset": {f"ops.{op_id}": ""}}, events)
            result = await self.accounts.find_one_and_update(
                {"_id": user_id, "usage_seq": doc["usage_seq"], f"ops.{op_id}": {"$exists": True}}, update,
                return_document=ReturnDocument.AFTER)
            if result is not None:
                return result

    # ------------------------------------------------------------ reconciliation
    async def with_operations(self) -> list[dict[str, Any]]:
        return await self.accounts.find({"op_count": {"$gt": 0}}, {"_outbox": 0}).to_list(None)

    async def with_unpublished_usage(self) -> list[str]:
        return [d["_id"] for d in await self.accounts.find({"usage_dirty": True}, {"_id": 1}).to_list(None)]
