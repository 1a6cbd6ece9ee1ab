"""Blob deletions that wait for S3. When an operation is undone while S3 is away (an upload
that failed because S3 went down), its version document and its reservation go at once -
the account is left exactly as before - and the blob's key is kept in `blob_deletions`; the
reconciler deletes those blobs once S3 answers again. Deleting a key S3 never stored is
harmless, so a blob that may or may not have been written is simply deleted later."""

from typing import Any

from osmcloud_common.faults import unavailable_dependency
from osmcloud_common.logging import get_logger

from .ports import Blobs, Clock

log = get_logger(__name__)

BATCH = 500


class DeferredBlobDeletions:
    def __init__(self, collection: Any, blobs: Blobs, clock: Clock) -> None:
        self.collection, self.blobs, self.clock = collection, blobs, clock

    async def delete_or_defer(self, user_id: str, key: str) -> None:
        """Deletes the blob now, or - when S3 cannot be reached - records it for later."""
        try:
            await self.blobs.delete(key)
        except Exception as exc:
            if unavailable_dependency(exc) is None:
                raise
            # every document of a user's carries user_id: account deletion sweeps these too
            await self.collection.update_one(
                {"_id": key}, {"$setOnInsert": {"user_id": user_id, "since": self.clock.now()}}, upsert=True)
            log.warning("blob deletion deferred until S3 answers", key=key, error=repr(exc))

    async def retry(self) -> int:
        """Deletes the blobs whose deletion waited (up to BATCH); raises while S3 is still away."""
        keys = [d["_id"] async for d in self.collection.find({}, {"_id": 1}).limit(BATCH)]
        if not keys:
            return 0
        await self.blobs.delete_many(keys)
        await self.collection.delete_many({"_id": {"$in": keys}})
        log.info("deferred blob deletions done", count=len(keys))
        return len(keys)
