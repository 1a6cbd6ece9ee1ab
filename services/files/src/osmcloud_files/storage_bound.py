"""Keeps an account's stored bytes within its plan's storage limit (storage_rule.py,
docs/adr/0005-storage-bound.md): after a change that added stored bytes, the same request
removes old versions and trash items, oldest first, until what it added above the limit is
freed. Every read is a page of at most PAGE documents; a removal records file-versions-pruned
first (trash drops an item whose delete marker is among the ids), then removes blobs, heads
and version documents, then lowers stored_bytes — a crash midway leaves the figure high,
never low, and the versions for the next pass."""

from typing import Any

from pymongo import ASCENDING, DESCENDING

from osmcloud_common.events import Entitlement
from osmcloud_common.logging import get_logger
from osmcloud_common.mongo import delete_by_ids, find_by_ids

from .domain import FileRef
from .ledger import Ledger, busy_files
from .ports import Blobs, EventPublisher
from .storage_rule import bytes_to_free, protected_ids, take_oldest, version_cost
from .store import FilesStore
from .trash_reactions import pruned_payloads

log = get_logger(__name__)

PAGE = 500
FIELDS = {"_id": 1, "user_id": 1, "type": 1, "name": 1, "size": 1, "blob_key": 1, "deleted": 1, "op": 1,
          "updated_ms": 1, "seq": 1}


class StorageBound:
    def __init__(self, events: EventPublisher, store: FilesStore, ledger: Ledger, blobs: Blobs) -> None:
        self.events, self.store, self.ledger, self.blobs = events, store, ledger, blobs

    async def enforce(self, ref: FileRef, added: int, account: dict[str, Any] | None = None) -> int:
        """Frees what this change (`added` stored bytes, on file `ref`) put above the limit;
        returns the bytes freed. `account`: the ledger document as the change left it (spares
        a read when nothing is to be freed). Never raises: the change itself has succeeded,
        and a pass that fails leaves the account to the next change."""
        try:
            if account is not None and not self._over(account, added):
                return 0
            return await self._enforce(ref, added)
        except Exception as exc:
            log.error("could not keep the account within its storage limit", user_id=ref.user_id, error=repr(exc))
            return 0

    @staticmethod
    def _over(account: dict[str, Any], added: int) -> bool:
        if not account.get("entitlement"):
            return False
        limit = Entitlement.model_validate(account["entitlement"]).storage_limit
        return bytes_to_free(account.get("stored_bytes", 0), limit, added) > 0

    async def _enforce(self, ref: FileRef, added: int) -> int:
        account = await self.ledger.get(ref.user_id)
        if not account.get("entitlement"):
            return 0
        limit = Entitlement.model_validate(account["entitlement"]).storage_limit
        need = bytes_to_free(account.get("stored_bytes", 0), limit, added)
        if need <= 0:
            return 0
        busy = busy_files(account)
        in_flight = set(account.get("ops") or {})
        freed = 0
        if ref.key not in busy:
            freed += await self._own_old_versions(ref, need, in_flight)
        if freed < need:
            freed += await self._trash_items(ref, need - freed, busy)
        if freed < need:
            freed += await self._other_old_versions(ref, need - freed, busy, in_flight)
        log.info("storage limit kept", user_id=ref.user_id, limit=limit, need=need, freed=freed)
        return freed

    # ------------------------------------------------------------ 1. the same file's old versions
    async def _own_old_versions(self, ref: FileRef, need: int, in_flight: set[str]) -> int:
        doc = await self.store.head_doc(ref.key)
        head = (doc or {}).get("head")
        if head is None:
            return 0
        newest_live = None
        if head.get("deleted"):
            newest_live = await self.store.versions.find_one(
                {"user_id": ref.user_id, "type": ref.file_type, "name": ref.name, "deleted": False},
                {"_id": 1}, sort=[("updated_ms", DESCENDING)])
        keep = protected_ids(head, newest_live)
        freed, after = 0, None
        while freed < need:
            query: dict[str, Any] = {"user_id": ref.user_id, "type": ref.file_type, "name": ref.name}
            if after is not None:
                query["updated_ms"] = {"$gt": after}
            page = await self.store.versions.find(query, FIELDS).sort("updated_ms", ASCENDING).limit(PAGE).to_list(None)
            if not page:
                break
            after = page[-1]["updated_ms"]
            candidates = [v for v in page if v["_id"] not in keep and v.get("op") not in in_flight]
            chosen, _ = take_oldest(candidates, need - freed)
            freed += await self._remove_versions(ref.user_id, chosen)
        return freed

    # ------------------------------------------------------------ 2. trash items, oldest first
    async def _trash_items(self, ref: FileRef, need: int, busy: set[str]) -> int:
        freed = 0
        while freed < need:
            heads = await self.store.heads.find(
                {"user_id": ref.user_id, "head.deleted": True, "head.grace_end": {"$ne": True},
                 "_id": {"$nin": [ref.key, *sorted(k for k in busy if k)]}},
                {"_id": 1, "type": 1, "name": 1, "head": 1}).sort("changed_seq", ASCENDING).limit(20).to_list(None)
            if not heads:
                break
            for doc in heads:
                if freed >= need:
                    break
                freed += await self._evict_trashed(ref.user_id, doc)
        return freed

    async def _evict_trashed(self, user_id: str, doc: dict[str, Any]) -> int:
        """A trashed file, whole: its versions up to the delete marker, their blobs and the
        head if it still is the marker; file-versions-pruned (with the marker) drops the item."""
        marker = doc["head"]
        victims = await self.store.versions.find(
            {"user_id": user_id, "type": doc["type"], "name": doc["name"],
             "updated_ms": {"$lte": marker["updated_ms"]}}, FIELDS).to_list(None)
        if not victims:
            return 0
        await self._record(user_id, victims)
        await self.blobs.delete_many([v["blob_key"] for v in victims if v.get("blob_key")])
        await self.store.delete_heads_still_at([(doc["_id"], marker["version_id"])])
        freed = sum(version_cost(v.get("size")) for v in victims)
        await delete_by_ids(self.store.versions, [v["_id"] for v in victims])
        await self.ledger.add_stored(user_id, -freed)
        return freed

    # ------------------------------------------------------------ 3. any live file's old versions
    async def _other_old_versions(self, ref: FileRef, need: int, busy: set[str], in_flight: set[str]) -> int:
        freed, after = 0, -1
        while freed < need:
            page = await self.store.versions.find({"user_id": ref.user_id, "seq": {"$gt": after}}, FIELDS
                                                  ).sort("seq", ASCENDING).limit(PAGE).to_list(None)
            if not page:
                break
            after = page[-1].get("seq") or after + 1
            keys = sorted({f"{ref.user_id}/{v['type']}/{v['name']}" for v in page})
            heads = {h["_id"]: h.get("head") for h in await find_by_ids(self.store.heads, keys, {"_id": 1, "head": 1})}
            candidates = []
            for v in page:
                key = f"{ref.user_id}/{v['type']}/{v['name']}"
                head = heads.get(key)
                if head is None or head.get("deleted") or key in busy or v.get("op") in in_flight:
                    continue  # trashed files go whole (step 2); a file being changed is left alone
                if v["_id"] != head["version_id"] and v["updated_ms"] < head["updated_ms"]:
                    candidates.append(v)
            chosen, _ = take_oldest(candidates, need - freed)
            freed += await self._remove_versions(ref.user_id, chosen)
        return freed

    # ------------------------------------------------------------ removing old versions
    async def _remove_versions(self, user_id: str, versions: list[dict[str, Any]]) -> int:
        if not versions:
            return 0
        await self._record(user_id, versions)
        await self.blobs.delete_many([v["blob_key"] for v in versions if v.get("blob_key")])
        await delete_by_ids(self.store.versions, [v["_id"] for v in versions])
        freed = sum(version_cost(v.get("size")) for v in versions)
        await self.ledger.add_stored(user_id, -freed)
        return freed

    async def _record(self, user_id: str, versions: list[dict[str, Any]]) -> None:
        """file-versions-pruned first: a crash after it leaves versions a later pass removes."""
        events = [self.events.event(p, user_id) for p in pruned_payloads(versions)]
        await self.ledger.add_events(user_id, events)
        self.events.account_written(user_id)
        # trash drops the items whose versions went before the change answers (read-your-writes)
        await self.events.hand_to_trash(events)
