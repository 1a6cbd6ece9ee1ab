"""The trash page API."""

from aiohttp import web

from osmcloud_common.http import identity

from .domain import group_by_month
from .store import TrashStore


def item_view(doc: dict) -> dict:
    return {"id": doc["_id"], "type": doc["type"], "name": doc["name"], "category": doc["category"],
            "size": doc["size"], "deleted_at": doc["deleted_at"].isoformat(),
            "expires_at": doc["expires_at"].isoformat(), "last_version_id": doc["last_version_id"]}


class TrashRoutes:
    def __init__(self, store: TrashStore) -> None:
        self.store = store

    def register(self, app: web.Application) -> None:
        app.router.add_get("/api/trash", self.list_items)

    async def list_items(self, request: web.Request) -> web.Response:
        who = identity(request)
        items = [item_view(d) for d in await self.store.of_user(who.user_id)]
        return web.json_response({"total_items": len(items), "total_bytes": sum(max(0, i["size"]) for i in items),
                                  "months": group_by_month(items)})
