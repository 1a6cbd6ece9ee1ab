"""files' part of the admin API (/admin/api/files/, docs/admin-openapi.yaml): an account's usage,
its data exported as a streamed zip (export.py), and the reconciler run now."""

from aiohttp import web

from osmcloud_common.admin import AdminApi
from osmcloud_common.blobstore import BlobStore

from .errors import AccountNotFound, InvalidInput
from .export import stream_export
from .reconcile import Reconciler
from .store import FilesStore


class FilesAdminRoutes:
    def __init__(self, store: FilesStore, blobs: BlobStore, reconciler: Reconciler) -> None:
        self.store, self.blobs, self.reconciler = store, blobs, reconciler

    def register(self, admin: AdminApi) -> None:
        admin.route("GET", "/accounts/{user_id}", self.account, action="usage-viewed")
        admin.route("GET", "/accounts/{user_id}/export", self.export, action="account-exported")
        admin.route("POST", "/reconcile", self.reconcile, action="reconciler-run")

    async def account(self, request: web.Request, operator: str) -> web.Response:
        user_id = request.match_info["user_id"]
        doc = await self.store.accounts.find_one({"_id": user_id}, {"_outbox": 0, "ops": 0})
        if doc is None:
            raise AccountNotFound(user_id)
        versions, stored = await self.store.count_versions(user_id)
        return web.json_response({"user_id": user_id, "used_bytes": doc.get("used_bytes", 0),
                                  "file_count": doc.get("file_count", 0), "versions": versions,
                                  "stored_bytes": stored, "entitlement": doc.get("entitlement"),
                                  "entitlement_as_of": doc["entitlement_as_of"].isoformat()
                                  if doc.get("entitlement_as_of") else None})

    async def export(self, request: web.Request, operator: str) -> web.StreamResponse:
        user_id = request.match_info["user_id"]
        versions = request.query.get("versions", "newest")
        if versions not in ("newest", "all"):
            raise InvalidInput("'versions' is newest (default) or all")
        if await self.store.accounts.find_one({"_id": user_id}, {"_id": 1}) is None:
            raise AccountNotFound(user_id)
        response = web.StreamResponse(headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="osmcloud-{user_id}.zip"'})
        response.enable_chunked_encoding()
        await response.prepare(request)

        async def send(data: bytes) -> None:
            if data:
                await response.write(data)
        await stream_export(self.store, self.blobs, user_id, versions == "all", send)
        await response.write_eof()
        return response

    async def reconcile(self, request: web.Request, operator: str) -> web.Response:
        return web.json_response({"recovered": await self.reconciler.once()})
