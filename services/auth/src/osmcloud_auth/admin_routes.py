"""auth's part of the admin API (/admin/api/auth/, docs/admin-openapi.yaml): find an account by
e-mail or id with its devices and when each was last seen, log out one device or all, delete
an account (no code: the operator decides; the same deletion as the user's, events and all)."""

from aiohttp import web
from pydantic import BaseModel, Field

from osmcloud_common.admin import AUDITED_USER, AdminApi
from osmcloud_common.errors import BadRequest, NotFound
from osmcloud_common.events import DeviceLoggedOut
from osmcloud_common.http import json_body
from osmcloud_common.runtime import Runtime

from .account_deletion import AccountDeletion
from .domain import normalize_email
from .routes import device_view
from .store import AuthStore


class LogoutRequest(BaseModel):
    device_id: str | None = Field(default=None, max_length=100)  # none: every device


class AuthAdminRoutes:
    def __init__(self, runtime: Runtime, store: AuthStore, deletion: AccountDeletion) -> None:
        self.rt, self.store, self.deletion = runtime, store, deletion

    def register(self, admin: AdminApi) -> None:
        admin.route("GET", "/accounts", self.find, action="account-looked-up")
        admin.route("GET", "/accounts/{user_id}", self.account, action="account-viewed")
        admin.route("POST", "/accounts/{user_id}/logout", self.logout, action="devices-logged-out")
        admin.route("DELETE", "/accounts/{user_id}", self.delete, action="account-deleted-by-operator")

    async def _user(self, user_id: str) -> dict:
        user = await self.store.user(user_id)
        if user is None:
            raise NotFound(f"no account '{user_id}'", code="unknown_account")
        return user

    async def _view(self, user: dict) -> dict:
        devices = await self.store.devices_of(user["_id"])
        seen = [d["last_seen_at"] for d in devices]
        return {"user_id": user["_id"], "email": user["email"], "created_at": user["created_at"].isoformat(),
                "last_seen_at": max(seen).isoformat() if seen else None,
                "devices": [device_view(d) for d in devices]}

    async def find(self, request: web.Request, operator: str) -> web.Response:
        email = request.query.get("email", "")
        if not email or len(email) > 320:
            raise BadRequest("give ?email=<the account's e-mail address>")
        user = await self.store.user_by_email(normalize_email(email))
        if user is None:
            raise NotFound("no account has this e-mail address", code="unknown_account")
        request[AUDITED_USER] = user["_id"]
        return web.json_response(await self._view(user))

    async def account(self, request: web.Request, operator: str) -> web.Response:
        return web.json_response(await self._view(await self._user(request.match_info["user_id"])))

    async def logout(self, request: web.Request, operator: str) -> web.Response:
        user_id = request.match_info["user_id"]
        await self._user(user_id)
        body = await json_body(request, LogoutRequest)
        device_ids = [body.device_id] if body.device_id else [d["device_id"] for d in await self.store.devices_of(user_id)]
        logged_out = []
        for device_id in device_ids:
            event = self.rt.event(DeviceLoggedOut(device_id=device_id), user_id)
            if await self.store.revoke_device(user_id, device_id, self.rt.clock.now(), [event]):
                logged_out.append(device_id)
            elif body.device_id:
                raise NotFound(f"this account has no logged-in device '{device_id}'", code="device_not_found")
        if logged_out:
            self.rt.events_written()
        return web.json_response({"user_id": user_id, "logged_out": logged_out})

    async def delete(self, request: web.Request, operator: str) -> web.Response:
        user_id = request.match_info["user_id"]
        await self._user(user_id)
        await self.deletion.delete_account(user_id)
        return web.json_response({"status": "deleted", "user_id": user_id})
