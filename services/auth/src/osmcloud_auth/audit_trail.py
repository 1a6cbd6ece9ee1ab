"""The security-relevant actions of users, written to auth's audit log (osmcloud_common.audit)
as they are answered: sign-ins and failed codes, logouts, account deletions, on the native API
and OsmAnd's. A middleware around the routes, so the routes themselves stay as they are; it
records the action, the account, the client address and the outcome (the error's code), and
the e-mail of a failed sign-in — never a code, token or body."""

import json
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from osmcloud_common.admin import client_address
from osmcloud_common.deleted_accounts import account_key
from osmcloud_common.domain_errors import DomainError
from osmcloud_common.errors import ApiError
from osmcloud_common.runtime import Runtime

from .store import AuthStore

# (method, route) -> action
ACTIONS = {
    ("POST", "/api/auth/sessions"): "login",
    ("POST", "/api/auth/browser-sessions"): "login",
    ("POST", "/userdata/device-register"): "login",
    ("POST", "/userdata/auth/confirm-code"): "code-check",
    ("POST", "/api/auth/logout"): "logout",
    ("DELETE", "/api/auth/devices/{device_id}"): "device-logged-out",
    ("POST", "/api/auth/account/delete"): "account-deleted",
    ("POST", "/userdata/delete-account"): "account-deleted",
}


def _json(response: web.StreamResponse) -> dict[str, Any]:
    raw = response.body if isinstance(response, web.Response) else None
    if not raw or not isinstance(raw, bytes | bytearray):  # none, or a streamed payload: nothing to read
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def _email(request: web.Request) -> str | None:
    try:
        body = await request.json()
    except Exception:
        return None
    email = body.get("email") if isinstance(body, dict) else None
    return email[:320] if isinstance(email, str) else None


async def _user_id(body: dict[str, Any], store: AuthStore) -> str | None:
    """The account an answer names: the native API's user_id, or OsmAnd's integer userid."""
    user_id = body.get("user_id")
    if isinstance(user_id, str):
        return user_id
    try:
        num = int(body["userid"])
    except (KeyError, TypeError, ValueError):
        return None
    user = await store.users.find_one({"num": num}, {"_id": 1})
    return str(user["_id"]) if user else None


def audit_middleware(runtime: Runtime, store: AuthStore) -> Middleware:
    @web.middleware
    async def audit(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        action = ACTIONS.get((request.method, resource.canonical if resource else ""))
        if action is None:
            return await handler(request)
        user_id = request.headers.get("X-User-Id") or None
        detail: dict[str, Any] = {}
        if "device_id" in request.match_info:
            detail["device_id"] = request.match_info["device_id"]
        try:
            response = await handler(request)
        except (ApiError, DomainError) as exc:  # a domain error is mapped to its answer outside
            if action in ("login", "code-check"):
                detail["email"] = await _email(request)
            await runtime.audit.record(f"{action}-refused", actor=user_id or "anonymous", user_id=user_id,
                                       address=client_address(request), outcome=exc.code, detail=detail)
            raise
        user_id = user_id or await _user_id(_json(response), store)
        if action == "account-deleted" and user_id:
            # the account's own entries are erased with it; this one only says it happened
            detail["account"] = account_key(str(user_id))
            user_id = None
        outcome = "ok" if response.status < 400 else f"http_{response.status}"
        await runtime.audit.record(action, actor=str(user_id) if user_id else "user", user_id=user_id,
                                   address=client_address(request), outcome=outcome, detail=detail)
        return response
    return audit
