"""trash's part of the admin API (/admin/api/trash/, docs/admin-openapi.yaml): the purge of
expired items run now (the same pass the periodic job makes; safe beside it and other
replicas: items are claimed before they are purged)."""

from aiohttp import web

from osmcloud_common.admin import AdminApi

from .purge import Purger


class TrashAdminRoutes:
    def __init__(self, purger: Purger) -> None:
        self.purger = purger

    def register(self, admin: AdminApi) -> None:
        admin.route("POST", "/purge", self.purge, action="trash-purge-run")

    async def purge(self, request: web.Request, operator: str) -> web.Response:
        return web.json_response({"purged": await self.purger.run_once()})
