"""Account-wide calls of the files API: the storage page, per-type backup switches, "delete
old versions", "delete all my data", "delete a type from the cloud", and the changes feed."""

from aiohttp import web
from pydantic import BaseModel, StrictBool

from osmcloud_common.datatypes import TYPE_CATEGORIES
from osmcloud_common.errors import BadRequest
from osmcloud_common.http import identity, json_answer, json_body

from .domain import decode_cursor, encode_cursor, feed_horizon, parse_file_ref, storage_breakdown
from .feed import feed_page
from .listing import Listings
from .operations import Operations
from .store import FilesStore

TYPE = "{file_type:[A-Za-z_]+}"
MAX_CHANGES = 1000


class BackupSwitch(BaseModel):
    enabled: StrictBool  # true or false; not 0, 1 or "yes"


def _known_type(user_id: str, file_type: str) -> str:
    return parse_file_ref(user_id, file_type, "x").file_type  # 400 for an unknown type


class AccountRoutes:
    def __init__(self, store: FilesStore, ops: Operations, listings: Listings) -> None:
        self.store, self.ops, self.ledger, self.listings = store, ops, store.ledger, listings

    def register(self, app: web.Application) -> None:
        """Register before FilesRoutes: /api/files/types/{type} would otherwise match {type}/{name}."""
        app.router.add_get("/api/files/storage", self.storage)
        app.router.add_get("/api/files/backup-types", self.backup_types)
        app.router.add_put(f"/api/files/backup-types/{TYPE}", self.switch_backup)
        app.router.add_post("/api/files/prune", self.prune)
        app.router.add_delete("/api/files", self.delete_all)
        app.router.add_delete(f"/api/files/types/{TYPE}", self.delete_type)
        app.router.add_get("/api/files/changes", self.changes)

    # ------------------------------------------------------------ storage page
    async def storage(self, request: web.Request) -> web.Response:
        who = identity(request)
        account = await self.ledger.get(who.user_id)
        files = await self.listings.live_files(who.user_id)
        return web.json_response(storage_breakdown(
            [(f.file_type, f.size) for f in files], account["used_bytes"], account["file_count"],
            account.get("entitlement"), account.get("backup_off") or []))

    async def backup_types(self, request: web.Request) -> web.Response:
        who = identity(request)
        off = (await self.ledger.get(who.user_id)).get("backup_off") or []
        return web.json_response({"types": [{"type": t, "category": str(c), "enabled": t not in off}
                                            for t, c in TYPE_CATEGORIES.items()]})

    async def switch_backup(self, request: web.Request) -> web.Response:
        """Switching a type off refuses its uploads (409 backup_disabled); stored files stay."""
        who = identity(request)
        file_type = _known_type(who.user_id, request.match_info["file_type"])
        switch = await json_body(request, BackupSwitch)
        assert isinstance(switch, BackupSwitch)  # json_body is typed to return any BaseModel
        await self.ledger.set_backup(who.user_id, file_type, switch.enabled)
        return web.json_response({"type": file_type, "category": str(TYPE_CATEGORIES[file_type]),
                                  "enabled": switch.enabled})

    # ------------------------------------------------------------ deleting in bulk
    async def prune(self, request: web.Request) -> web.Response:
        who = identity(request)
        file_type = request.query.get("type") or None
        if file_type:
            _known_type(who.user_id, file_type)
        return web.json_response(await self.ops.prune(who.user_id, file_type))

    async def delete_all(self, request: web.Request) -> web.Response:
        who = identity(request)
        return web.json_response({"status": "deleted", **await self.ops.delete_all(who.user_id)})

    async def delete_type(self, request: web.Request) -> web.Response:
        who = identity(request)
        file_type = _known_type(who.user_id, request.match_info["file_type"])
        return web.json_response(await self.ops.delete_type(who.user_id, file_type, who.device_id))

    # ------------------------------------------------------------ changes feed
    async def changes(self, request: web.Request) -> web.Response:
        """Every new version and delete marker after the cursor, in order, plus heads that
        changed without a new version (a version deleted permanently). `reset: true` means
        the cursor predates "delete all my data": list the files again and go on from `cursor`."""
        who = identity(request)
        after = decode_cursor(request.query.get("cursor"))
        raw_limit = request.query.get("limit") or "200"
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_CHANGES:
            raise BadRequest(f"limit must be a whole number from 1 to {MAX_CHANGES}", code="invalid_limit")
        limit = int(raw_limit)
        account = await self.ledger.get(who.user_id)
        horizon = feed_horizon(account["change_seq"],
                               [op["floor"] for op in account["ops"].values() if op.get("floor") is not None])
        if after < account.get("reset_seq", 0):
            return web.json_response({"changes": [], "cursor": encode_cursor(horizon), "more": False, "reset": True})
        page = await feed_page(self.store, who.user_id, after, horizon, limit)
        return json_answer({"changes": page.entries, "cursor": encode_cursor(page.upto), "more": page.more,
                            "reset": False})
