"""Auth's HTTP API (behind the gateway) and the gateway's verification sub-request. The use
cases live in accounts.py, codes.py and account_deletion.py; `native_error` is the one place
auth's domain errors become native answers."""

from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from osmcloud_common.clock import Clock
from osmcloud_common.domain_errors import DomainError, status_mapper
from osmcloud_common.errors import ApiError, Unauthorized
from osmcloud_common.http import identity, json_body

from .account_deletion import AccountDeletion
from .accounts import Accounts
from .browser_sessions import clear_session_cookies, credential, set_session_cookies
from .codes import Codes
from .domain import Purpose, digest, normalize_email
from .errors import (
    AccountGone,
    CodeRejected,
    DeviceNotFound,
    InvalidEmail,
    MailFailed,
    PurchasesUnavailable,
    TooManyCodes,
    UnknownAccount,
)
from .store import AuthStore
from .token_cache import TokenCache, Verified

_by_status = status_mapper({InvalidEmail: 400, CodeRejected: 400, TooManyCodes: 429, MailFailed: 503,
                            DeviceNotFound: 404, UnknownAccount: 404, PurchasesUnavailable: 503})


def native_error(error: DomainError) -> ApiError:
    if isinstance(error, AccountGone):
        return Unauthorized(error.message)
    return _by_status(error)

# last_seen_at is written at most once a minute per device: verify stays a single read
LAST_SEEN_EVERY = timedelta(seconds=60)


class CodeRequest(BaseModel):
    email: str


class DeviceDescription(BaseModel):
    name: str = Field(default="", max_length=200)
    brand: str = Field(default="", max_length=100)
    model: str = Field(default="", max_length=100)
    platform: str = Field(default="", max_length=50)


class LoginRequest(BaseModel):
    email: str
    code: str = Field(max_length=32)
    device: DeviceDescription = DeviceDescription()


class DeleteRequest(BaseModel):
    code: str = Field(max_length=32)


class BrowserLoginRequest(BaseModel):
    email: str
    code: str = Field(max_length=32)
    # what the web app calls the browser ("Firefox on Linux"); the device list shows it
    browser: str = Field(default="", max_length=200)


def client_address(request: web.Request) -> str | None:
    """The client's address as the gateway saw it (nginx overwrites X-Real-IP)."""
    return request.headers.get("X-Real-IP") or None


def device_view(doc: dict[str, Any], current_device_id: str = "") -> dict[str, Any]:
    return {"id": doc["device_id"], "name": doc.get("name", ""), "brand": doc.get("brand", ""),
            "model": doc.get("model", ""), "platform": doc.get("platform", ""),
            "created_at": doc["created_at"].isoformat(), "last_seen_at": doc["last_seen_at"].isoformat(),
            "this_device": doc["device_id"] == current_device_id}


class AuthRoutes:
    def __init__(self, clock: Clock, store: AuthStore, codes: Codes, accounts: Accounts, deletion: AccountDeletion,
                 cache: TokenCache | None = None, browser_session_seconds: int = 90 * 86400) -> None:
        self.clock, self.store, self.codes, self.accounts, self.deletion = clock, store, codes, accounts, deletion
        self.browser_session_seconds = browser_session_seconds
        self.cache = cache if cache is not None else TokenCache(
            max_entries=0, lease_seconds=1, max_age_seconds=0, last_seen_every=LAST_SEEN_EVERY)

    def register(self, app: web.Application) -> None:
        app.router.add_post("/api/auth/login-codes", self.request_code)
        app.router.add_post("/api/auth/sessions", self.login)
        app.router.add_post("/api/auth/browser-sessions", self.browser_login)
        app.router.add_get("/api/auth/account", self.account)
        app.router.add_get("/api/auth/devices", self.devices)
        app.router.add_delete("/api/auth/devices/{device_id}", self.log_out_device)
        app.router.add_post("/api/auth/logout", self.log_out)
        app.router.add_post("/api/auth/account/deletion-codes", self.request_deletion_code)
        app.router.add_post("/api/auth/account/delete", self.delete_account)
        app.router.add_get("/internal/verify", self.verify)

    async def request_code(self, request: web.Request) -> web.Response:
        body = await json_body(request, CodeRequest)
        assert isinstance(body, CodeRequest)
        sent = await self.codes.issue(normalize_email(body.email), Purpose.LOGIN, client_address(request))
        return web.json_response(sent, status=202)

    async def login(self, request: web.Request) -> web.Response:
        body = await json_body(request, LoginRequest)
        assert isinstance(body, LoginRequest)
        token, user, device, created = await self.accounts.register_device(
            body.email, body.code, body.device.model_dump(), client_address(request))
        return web.json_response({"token": token, "user_id": user["_id"], "device_id": device["device_id"],
                                  "new_account": created}, status=201)

    async def browser_login(self, request: web.Request) -> web.Response:
        """The web app's sign-in: the token goes into an HttpOnly cookie, never into the body
        (browser_sessions.py)."""
        body = await json_body(request, BrowserLoginRequest)
        assert isinstance(body, BrowserLoginRequest)
        description = {"name": body.browser.strip() or "Web browser", "brand": "", "model": "", "platform": "web"}
        token, user, device, created = await self.accounts.register_device(body.email, body.code, description,
                                                                            client_address(request))
        response = web.json_response({"user_id": user["_id"], "device_id": device["device_id"],
                                      "new_account": created}, status=201)
        set_session_cookies(response, token, self.browser_session_seconds)
        return response

    async def account(self, request: web.Request) -> web.Response:
        who = identity(request)
        user = await self.store.user(who.user_id)
        if user is None:
            raise Unauthorized("this account no longer exists")
        devices = await self.store.devices_of(who.user_id)
        return web.json_response({"user_id": user["_id"], "email": user["email"],
                                  "created_at": user["created_at"].isoformat(),
                                  "devices": [device_view(d, who.device_id) for d in devices]})

    async def devices(self, request: web.Request) -> web.Response:
        who = identity(request)
        devices = await self.store.devices_of(who.user_id)
        return web.json_response({"devices": [device_view(d, who.device_id) for d in devices]})

    async def log_out_device(self, request: web.Request) -> web.Response:
        who = identity(request)
        device_id = request.match_info["device_id"]
        await self.accounts.log_out(who.user_id, device_id)
        return web.json_response({"status": "logged_out", "device_id": device_id,
                                  "this_device": device_id == who.device_id})

    async def log_out(self, request: web.Request) -> web.Response:
        who = identity(request)
        await self.accounts.log_out(who.user_id, who.device_id)
        response = web.json_response({"status": "logged_out", "device_id": who.device_id, "this_device": True})
        clear_session_cookies(response)
        return response

    async def request_deletion_code(self, request: web.Request) -> web.Response:
        who = identity(request)
        sent = await self.deletion.request_code(who.user_id, client_address(request))
        return web.json_response(sent, status=202)

    async def delete_account(self, request: web.Request) -> web.Response:
        who = identity(request)
        body = await json_body(request, DeleteRequest)
        assert isinstance(body, DeleteRequest)
        await self.deletion.delete_with_code(who.user_id, body.code, client_address(request))
        response = web.json_response({"status": "deleted", "user_id": who.user_id})
        clear_session_cookies(response)
        return response

    async def verify(self, request: web.Request) -> web.Response:
        """nginx's auth_request target: 200 with the identity headers, 401, or 403 for a web
        app call without its CSRF header (browser_sessions.py: a Bearer token, else the session
        cookie). From this replica's verify cache when it holds the token (token_cache.py: every
        revocation drops it in every replica before it answers), else one database read (plus a
        write at most once a minute per device)."""
        token = credential(request.headers, request.headers.get("X-Original-Method", request.method))
        token_digest = digest(token)
        now = self.clock.now()
        verified = self.cache.get(token_digest, now)
        if verified is None:
            verified = await self._verify_from_database(token_digest, now)
        return web.Response(status=200, headers=verified.headers)

    async def _verify_from_database(self, token_digest: str, now: datetime) -> Verified:
        ticket = self.cache.ticket()
        device = await self.store.device_by_token(token_digest)
        if device is None:
            raise Unauthorized("the device token is not valid (logged out or never issued)")
        last_seen_at = device["last_seen_at"]
        if last_seen_at <= now - LAST_SEEN_EVERY:
            await self.store.touch_device(token_digest, now)
            last_seen_at = now
        headers = {"X-User-Id": device["user_id"], "X-Device-Id": device["device_id"]}
        if device.get("num") is not None and device.get("user_num") is not None:
            headers.update({"X-User-Num": str(device["user_num"]), "X-Device-Num": str(device["num"])})
        verified = Verified(device["user_id"], device["device_id"], headers, last_seen_at)
        self.cache.put(token_digest, verified, ticket)
        return verified

