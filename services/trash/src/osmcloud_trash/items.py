"""The trash page's use cases, free of HTTP: find a user's item, delete it now, empty the
trash, restore an item through files. routes.py answers them; OsmAnd's empty-trash
(empty_trash.py) purges through the same Purger."""

from typing import Any

from osmcloud_common.clock import Clock, SystemClock
from osmcloud_common.logging import get_logger

from .domain import restore_claim
from .errors import FilesUnavailable, ItemNotFound, RestoreInProgress, RestoreUnavailable, TrashError
from .ports import FilesPort, TrashStorePort
from .purge import Purger

log = get_logger(__name__)


class TrashItems:
    def __init__(self, store: TrashStorePort, purger: Purger, files: FilesPort,
                 wall_clock: Clock | None = None) -> None:
        self.store, self.purger, self.files = store, purger, files
        self.wall: Clock = wall_clock or SystemClock()  # claims use wall time (purge.py)

    async def own_item(self, user_id: str, item_id: str) -> dict[str, Any]:
        item = await self.store.item(item_id)
        if item is None or item["user_id"] != user_id:
            raise ItemNotFound(f"no item {item_id} in your trash (restored, purged, or never there)")
        return item

    async def delete_now(self, user_id: str, item_id: str) -> dict[str, Any]:
        item = await self.own_item(user_id, item_id)
        if not await self.purger.purge([item], "deleted"):
            raise await self._busy(item["_id"])
        return item

    async def empty(self, user_id: str) -> dict[str, int]:
        return await self.purger.empty(user_id)

    async def restore(self, user_id: str, item_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the item, files' answer): the file is live again and the item gone from the trash.
        A restore claim keeps purges off the item meanwhile."""
        item = await self.own_item(user_id, item_id)
        if not await self.store.claim_one(restore_claim(item, claimed_by=self.purger.replica,
                                                        claimed_at=self.wall.now())):
            raise await self._busy(item["_id"])
        try:
            # a purge that claimed and finished between our read and our claim removed the item
            if await self.store.item(item["_id"]) is None:
                raise ItemNotFound(f"item {item['_id']} was purged meanwhile")
            try:
                restored = await self.files.restore(item)  # RestoreRefused: files' reason
            except FilesUnavailable as exc:
                log.warning("files unreachable for a restore", error=str(exc))
                raise RestoreUnavailable(
                    "the files service did not answer; the item stays in the trash, try again") from exc
            await self.store.remove_item(item["_id"])
        finally:
            await self.store.release(item["_id"], "restore")
        log.info("trash item restored", item_id=item["_id"], version_id=restored.get("version_id"))
        return item, restored

    async def _busy(self, item_id: str) -> TrashError:
        claim = await self.store.claim(item_id)
        if claim is not None and claim.get("action") == "restore":
            return RestoreInProgress("this item is being restored right now; reload the trash in a moment")
        return ItemNotFound(f"item {item_id} is being purged or is gone")
