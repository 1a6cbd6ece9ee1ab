"""auth's part of the admin API (/admin/api/auth/, docs/admin-openapi.yaml): find an account by
e-mail or id with its devices and when each was last seen, log out one device or all, delete
an account (no code: the operator decides; the same deletion as the user's, events and all)."""

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from osmcloud_common.admin import AUDITED_USER, AdminApi
from osmcloud_common.errors import BadRequest
from osmcloud_common.http import json_body

from .account_deletion import AccountDeletion
from .accounts import Accounts
from .domain import normalize_email
from .errors import UnknownAccount
from .routes import device_view
from .store import AuthStore


class LogoutRequest(BaseModel):
    device_id: str | None = Field(default=None, max_length=100)  # none: every device


class AuthAdminRoutes:
    """Domain errors (errors.py) become answers through the app's native mapping (routes.native_error)."""

    def __init__(self, store: AuthStore, accounts: Accounts, deletion: AccountDeletion) -> None:
        self.store, self.accounts, self.deletion = store, accounts, deletion

    def register(self, admin: AdminApi) -> None:
        admin.route("GET", "/accounts", self.find, action="account-looked-up")
        admin.route("GET", "/accounts/{user_id}", self.account, action="account-viewed")
        admin.route("POST", "/accounts/{user_id}/logout", self.logout, action="devices-logged-out")
        admin.route("DELETE", "/accounts/{user_id}", self.delete, action="account-deleted-by-operator")

    async def _user(self, user_id: str) -> dict[str, Any]:
        user = await self.store.user(user_id)
        if user is None:
            raise UnknownAccount(f"no account '{user_id}'")
        return user

    async def _view(self, user: dict[str, Any]) -> dict[str, Any]:
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
            raise UnknownAccount("no account has this e-mail address")
        request[AUDITED_USER] = user["_id"]
        return web.json_response(await self._view(user))

    async def account(self, request: web.Request, operator: str) -> web.Response:
        return web.json_response(await self._view(await self._user(request.match_info["user_id"])))

    async def logout(self, request: web.Request, operator: str) -> web.Response:
        user_id = request.match_info["user_id"]
        await self._user(user_id)
        body = await json_body(request, LogoutRequest)
        assert isinstance(body, LogoutRequest)
        if body.device_id:
            await self.accounts.log_out(user_id, body.device_id)  # DeviceNotFound: 404
            logged_out = [body.device_id]
        else:
            logged_out = await self.accounts.log_out_all(user_id)
        return web.json_response({"user_id": user_id, "logged_out": logged_out})

    async def delete(self, request: web.Request, operator: str) -> web.Response:
        user_id = request.match_info["user_id"]
        await self._user(user_id)
        await self.deletion.delete_account(user_id)
        return web.json_response({"status": "deleted", "user_id": user_id})
