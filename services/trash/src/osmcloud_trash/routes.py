"""The trash page API: list, restore, download, delete now, empty. The use cases live in
items.py; `native_error` is the one place trash's domain errors become native answers."""

from typing import Any
from urllib.parse import quote

from aiohttp import web

from osmcloud_common.domain_errors import DomainError
from osmcloud_common.errors import ApiError
from osmcloud_common.http import identity

from .domain import group_by_month
from .errors import ItemNotFound, RestoreInProgress, RestoreRefused, RestoreUnavailable
from .items import TrashItems
from .ports import TrashStorePort

STATUSES: dict[type[DomainError], int] = {ItemNotFound: 404, RestoreInProgress: 409, RestoreUnavailable: 503}


def native_error(error: DomainError) -> ApiError:
    if isinstance(error, RestoreRefused):
        # files' own refusal keeps its status; files unavailable (503: a dependency of its is
        # away) stays 503 so the client retries (the chaos run's FerretDB fault); any other
        # failure of files is a bad gateway for us
        status = error.files_status if error.files_status < 500 or error.files_status == 503 else 502
    else:
        status = STATUSES.get(type(error), 400)
    return ApiError(error.message, code=error.code, status=status, details=error.details)


def item_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], "type": doc["type"], "name": doc["name"], "category": doc["category"],
            "size": doc["size"], "deleted_at": doc["deleted_at"].isoformat(),
            "expires_at": doc["expires_at"].isoformat(), "last_version_id": doc["last_version_id"],
            "tombstone_update_ms": doc.get("tombstone_update_ms")}


def download_path(doc: dict[str, Any]) -> str:
    """Where the trashed file's last version is served: files keeps every version until the
    purge removes it."""
    return (f"/api/files/{quote(doc['type'], safe='')}/{quote(doc['name'], safe='/')}"
            f"?version={quote(doc['last_version_id'], safe='')}")


class TrashRoutes:
    def __init__(self, store: TrashStorePort, items: TrashItems) -> None:
        self.store, self.items = store, items

    def register(self, app: web.Application) -> None:
        app.router.add_get("/api/trash", self.list_items)
        app.router.add_delete("/api/trash", self.empty)
        app.router.add_delete("/api/trash/items/{item_id}", self.delete_now)
        app.router.add_post("/api/trash/items/{item_id}/restore", self.restore)
        app.router.add_get("/api/trash/items/{item_id}/download", self.download)

    async def list_items(self, request: web.Request) -> web.Response:
        who = identity(request)
        items = [item_view(d) for d in await self.store.of_user(who.user_id)]
        return web.json_response({"total_items": len(items), "total_bytes": sum(max(0, i["size"]) for i in items),
                                  "months": group_by_month(items)})

    async def download(self, request: web.Request) -> web.Response:
        item = await self.items.own_item(identity(request).user_id, request.match_info["item_id"])
        path = download_path(item)
        return web.json_response({"url": path, "version_id": item["last_version_id"], "type": item["type"],
                                  "name": item["name"], "size": item["size"]},
                                 status=307, headers={"Location": path})

    async def delete_now(self, request: web.Request) -> web.Response:
        item = await self.items.delete_now(identity(request).user_id, request.match_info["item_id"])
        return web.json_response({"status": "purged", "id": item["_id"], "purged": 1})

    async def empty(self, request: web.Request) -> web.Response:
        outcome = await self.items.empty(identity(request).user_id)
        return web.json_response({"status": "emptied", **outcome})

    async def restore(self, request: web.Request) -> web.Response:
        item, restored = await self.items.restore(identity(request).user_id, request.match_info["item_id"])
        return web.json_response({"status": "restored", "id": item["_id"], "file": restored})
