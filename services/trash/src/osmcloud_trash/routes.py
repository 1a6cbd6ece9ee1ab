"""The trash page API: list, restore, download, delete now, empty."""

from urllib.parse import quote

from aiohttp import web

from osmcloud_common.errors import ApiError, Conflict, NotFound
from osmcloud_common.http import identity
from osmcloud_common.logging import get_logger

from .domain import group_by_month, restore_claim
from .files_client import FilesClient, FilesUnavailable
from .purge import Purger, wall_now
from .store import TrashStore

log = get_logger(__name__)


def item_view(doc: dict) -> dict:
    return {"id": doc["_id"], "type": doc["type"], "name": doc["name"], "category": doc["category"],
            "size": doc["size"], "deleted_at": doc["deleted_at"].isoformat(),
            "expires_at": doc["expires_at"].isoformat(), "last_version_id": doc["last_version_id"],
            "tombstone_update_ms": doc.get("tombstone_update_ms")}


def download_path(doc: dict) -> str:
    """Where the trashed file's last version is served: files keeps every version until the
    purge removes it."""
    return (f"/api/files/{quote(doc['type'], safe='')}/{quote(doc['name'], safe='/')}"
            f"?version={quote(doc['last_version_id'], safe='')}")


class TrashRoutes:
    def __init__(self, store: TrashStore, purger: Purger, files: FilesClient) -> None:
        self.store, self.purger, self.files = store, purger, files

    def register(self, app: web.Application) -> None:
        app.router.add_get("/api/trash", self.list_items)
        app.router.add_delete("/api/trash", self.empty)
        app.router.add_delete("/api/trash/items/{item_id}", self.delete_now)
        app.router.add_post("/api/trash/items/{item_id}/restore", self.restore)
        app.router.add_get("/api/trash/items/{item_id}/download", self.download)

    async def _own_item(self, request: web.Request) -> dict:
        who = identity(request)
        item_id = request.match_info["item_id"]
        item = await self.store.item(item_id)
        if item is None or item["user_id"] != who.user_id:
            raise NotFound(f"no item {item_id} in your trash (restored, purged, or never there)",
                           code="item_not_found")
        return item

    async def list_items(self, request: web.Request) -> web.Response:
        who = identity(request)
        items = [item_view(d) for d in await self.store.of_user(who.user_id)]
        return web.json_response({"total_items": len(items), "total_bytes": sum(max(0, i["size"]) for i in items),
                                  "months": group_by_month(items)})

    async def download(self, request: web.Request) -> web.Response:
        item = await self._own_item(request)
        path = download_path(item)
        return web.json_response({"url": path, "version_id": item["last_version_id"], "type": item["type"],
                                  "name": item["name"], "size": item["size"]},
                                 status=307, headers={"Location": path})

    async def delete_now(self, request: web.Request) -> web.Response:
        item = await self._own_item(request)
        purged = await self.purger.purge([item], "deleted")
        if not purged:
            raise await self._busy(item["_id"])
        return web.json_response({"status": "purged", "id": item["_id"], "purged": 1})

    async def empty(self, request: web.Request) -> web.Response:
        who = identity(request)
        outcome = await self.purger.empty(who.user_id)
        return web.json_response({"status": "emptied", **outcome})

    async def restore(self, request: web.Request) -> web.Response:
        item = await self._own_item(request)
        if not await self.store.claim_one(restore_claim(item, claimed_by=self.purger.replica, claimed_at=wall_now())):
            raise await self._busy(item["_id"])
        try:
            # a purge that claimed and finished between our read and our claim removed the item
            if await self.store.item(item["_id"]) is None:
                raise NotFound(f"item {item['_id']} was purged meanwhile", code="item_not_found")
            try:
                status, body = await self.files.restore(item)
            except FilesUnavailable as exc:
                log.warning("files unreachable for a restore", error=str(exc))
                raise ApiError("the files service did not answer; the item stays in the trash, try again",
                               code="unavailable", status=503)
            if status >= 300:
                error = body.get("error") or {}
                # files unavailable (503: a dependency of its is away) stays 503, so the client
                # retries; any other failure of files is a bad gateway for us
                raise ApiError(error.get("message") or f"files refused the restore ({status})",
                               code=error.get("code") or "restore_refused",
                               status=status if status < 500 or status == 503 else 502,
                               details={k: v for k, v in error.items() if k not in ("code", "message")})
            await self.store.remove_item(item["_id"])
        finally:
            await self.store.release(item["_id"], "restore")
        log.info("trash item restored", item_id=item["_id"], version_id=body.get("version_id"))
        return web.json_response({"status": "restored", "id": item["_id"], "file": body})

    async def _busy(self, item_id: str) -> ApiError:
        claim = await self.store.claim(item_id)
        if claim is not None and claim.get("action") == "restore":
            return Conflict("this item is being restored right now; reload the trash in a moment",
                            code="restore_in_progress")
        return NotFound(f"item {item_id} is being purged or is gone", code="item_not_found")
