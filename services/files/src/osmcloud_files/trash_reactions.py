"""How files carries out the trash's decisions: `trash-item-purged` removes every version
of the file up to and including the purged delete marker, their blobs, and the file's head
if it still is that marker (a file uploaded again meanwhile keeps its newer versions).
Idempotent: a redelivered event finds nothing left to remove and emits nothing."""

import asyncio
from datetime import timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from osmcloud_common.blobstore import BlobStore
from osmcloud_common.events import Event, FileVersionsPruned, TrashItemPurged
from osmcloud_common.logging import get_logger
from osmcloud_common.outbox import new_document_with_events
from osmcloud_common.runtime import Runtime

from .domain import FileRef
from .store import FilesStore

log = get_logger(__name__)


def versions_to_purge(history: list[dict[str, Any]], tombstone_id: str) -> list[dict[str, Any]]:
    """Every version not newer than the purged delete marker (none if the marker is gone)."""
    marker = next((v for v in history if v["_id"] == tombstone_id), None)
    if marker is None:
        return []
    return [v for v in history if v["updated_ms"] <= marker["updated_ms"]]


class TrashReactions:
    def __init__(self, runtime: Runtime, store: FilesStore, blobs: BlobStore, prunes) -> None:
        self.rt, self.store, self.blobs, self.prunes = runtime, store, blobs, prunes

    async def item_purged(self, event: Event) -> None:
        p: TrashItemPurged = event.payload()
        ref = FileRef(event.user_id, p.file_type, p.name)
        victims = versions_to_purge(await self.store.history(ref), p.tombstone_version_id)
        if victims:
            ids = [v["_id"] for v in victims]
            freed = sum(max(0, v.get("size") or 0) for v in victims)
            # the event is recorded before anything is removed, so a crash halfway never loses it
            await self._record_pruned(p.tombstone_version_id, ref, ids, freed)
            await self.blobs.delete_many([v["blob_key"] for v in victims if v.get("blob_key")])
        await self.store.heads.delete_one({"_id": ref.key, "head.version_id": p.tombstone_version_id})
        if victims:
            # the marker goes last: while it exists, a redelivered event finds the rest again
            rest = [v["_id"] for v in victims if v["_id"] != p.tombstone_version_id]
            if rest:
                await self.store.versions.delete_many({"_id": {"$in": rest}})
            await self.store.remove_version(p.tombstone_version_id)
            log.info("trashed file purged", type=ref.file_type, name=ref.name, versions=len(victims), reason=p.reason)

    async def _record_pruned(self, tombstone_id: str, ref: FileRef, version_ids: list[str], freed: int) -> None:
        event = self.rt.event(FileVersionsPruned(file_type=ref.file_type, version_ids=version_ids, freed_bytes=freed),
                              ref.user_id)
        doc = {"_id": f"purge:{tombstone_id}", "user_id": ref.user_id, "type": ref.file_type, "name": ref.name,
               "created_at": self.rt.clock.now()}
        try:
            await self.prunes.insert_one(new_document_with_events(doc, [event]))
            self.rt.events_written()
        except DuplicateKeyError:
            pass  # recorded by an earlier delivery of the same purge

    async def forget_relayed(self, keep: timedelta = timedelta(minutes=10)) -> None:
        """Prune records are only the carriers of their events; drop them once relayed."""
        while True:
            try:
                await self.prunes.delete_many({"_outbox_pending": {"$exists": False},
                                               "created_at": {"$lt": self.rt.clock.now() - keep}})
            except Exception as exc:  # Mongo away: next time
                log.warning("could not drop relayed prune records", error=repr(exc))
            await asyncio.sleep(30)


def register_trash_reactions(runtime: Runtime, store: FilesStore) -> TrashReactions:
    reactions = TrashReactions(runtime, store, runtime.blobs, runtime.outbox_collection("prunes"))
    runtime.on_event(TrashItemPurged, reactions.item_purged)
    runtime.background(reactions.forget_relayed)
    return reactions
