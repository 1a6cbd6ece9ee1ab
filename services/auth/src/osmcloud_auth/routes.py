"""Auth's HTTP API (behind the gateway) and the gateway's verification sub-request."""

from datetime import timedelta

from aiohttp import web
from pydantic import BaseModel, Field

from osmcloud_common.errors import ApiError, BadRequest, TooManyRequests, Unauthorized
from osmcloud_common.events import AccountRegistered
from osmcloud_common.http import identity, json_body
from osmcloud_common.logging import get_logger
from osmcloud_common.runtime import Runtime

from .domain import CodeVerdict, Purpose, digest, judge_code, new_code, new_token, normalize_email
from .mailer import Mailer
from .settings import AuthSettings
from .store import AuthStore

log = get_logger(__name__)

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


CODE_ERRORS = {
    CodeVerdict.WRONG: ("code_wrong", "the code is wrong"),
    CodeVerdict.EXPIRED: ("code_expired", "the code has expired; ask for a new one"),
    CodeVerdict.USED: ("code_used", "the code was already used; ask for a new one"),
    CodeVerdict.EXHAUSTED: ("code_exhausted", "too many wrong tries for this code; ask for a new one"),
}


def device_view(doc: dict, current_device_id: str = "") -> dict:
    return {"id": doc["_id"], "name": doc.get("name", ""), "brand": doc.get("brand", ""),
            "model": doc.get("model", ""), "platform": doc.get("platform", ""),
            "created_at": doc["created_at"].isoformat(), "last_seen_at": doc["last_seen_at"].isoformat(),
            "this_device": doc["_id"] == current_device_id}


class AuthRoutes:
    def __init__(self, runtime: Runtime, store: AuthStore, mailer: Mailer, settings: AuthSettings) -> None:
        self.rt, self.store, self.mailer, self.settings = runtime, store, mailer, settings

    def register(self, app: web.Application) -> None:
        app.router.add_post("/api/auth/login-codes", self.request_code)
        app.router.add_post("/api/auth/sessions", self.login)
        app.router.add_get("/api/auth/account", self.account)
        app.router.add_get("/internal/verify", self.verify)

    async def _issue_code(self, email: str, purpose: Purpose) -> web.Response:
        now = self.rt.clock.now()
        code = new_code(self.settings.code_digits)
        ttl = timedelta(seconds=self.settings.code_ttl_seconds)
        resend = timedelta(seconds=self.settings.code_resend_seconds)
        retry_at = await self.store.replace_code(email, purpose, digest(code), now, ttl, resend)
        if retry_at is not None:
            wait = max(1, int((retry_at - now).total_seconds() + 0.999))
            raise TooManyRequests(f"a code was sent moments ago; ask again in {wait} s", code="code_recently_sent",
                                  details={"retry_after_seconds": wait})
        try:
            await self.mailer.send_code(email, code, purpose, self.settings.code_ttl_seconds // 60)
        except Exception as exc:
            log.error("mail failed", error=repr(exc))
            raise ApiError("the code could not be mailed; try again shortly", code="mail_failed", status=503)
        return web.json_response({"status": "sent", "expires_in_seconds": self.settings.code_ttl_seconds,
                                  "resend_after_seconds": self.settings.code_resend_seconds}, status=202)

    async def _check_code(self, email: str, purpose: Purpose, code: str) -> None:
        issued = await self.store.take_attempt(email, purpose, self.settings.code_max_attempts)
        if issued is None:
            state = await self.store.code_state(email, purpose)
            if state is None:
                raise BadRequest("no code was requested for this e-mail; ask for one first", code="code_unknown")
            verdict = CodeVerdict.USED if state.used else CodeVerdict.EXHAUSTED
        else:
            verdict = judge_code(issued, code, self.rt.clock.now(), self.settings.code_max_attempts)
            if verdict is CodeVerdict.OK and not await self.store.mark_used(email, purpose, issued.code_digest):
                verdict = CodeVerdict.USED
        if verdict is not CodeVerdict.OK:
            error_code, message = CODE_ERRORS[verdict]
            raise BadRequest(message, code=error_code)

    async def request_code(self, request: web.Request) -> web.Response:
        body = await json_body(request, CodeRequest)
        return await self._issue_code(normalize_email(body.email), Purpose.LOGIN)

    async def login(self, request: web.Request) -> web.Response:
        body = await json_body(request, LoginRequest)
        email = normalize_email(body.email)
        await self._check_code(email, Purpose.LOGIN, body.code.strip())
        now = self.rt.clock.now()
        user, created = await self.store.create_user(
            email, now, lambda user_id: [self.rt.event(AccountRegistered(email=email), user_id)])
        if created:
            self.rt.events_written()
        token = new_token()
        device = await self.store.add_device(user["_id"], digest(token), body.device.model_dump(), now)
        log.info("device registered", user_id=user["_id"], device_id=device["_id"], new_account=created)
        return web.json_response({"token": token, "user_id": user["_id"], "device_id": device["_id"],
                                  "new_account": created}, status=201)

    async def account(self, request: web.Request) -> web.Response:
        who = identity(request)
        user = await self.store.user(who.user_id)
        if user is None:
            raise Unauthorized("this account no longer exists")
        devices = await self.store.devices_of(who.user_id)
        return web.json_response({"user_id": user["_id"], "email": user["email"],
                                  "created_at": user["created_at"].isoformat(),
                                  "devices": [device_view(d, who.device_id) for d in devices]})

    async def verify(self, request: web.Request) -> web.Response:
        """nginx's auth_request target: 200 with the identity headers, or 401."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("authentication required: send 'Authorization: Bearer <device token>'")
        device = await self.store.device_by_token(digest(token.strip()))
        if device is None:
            raise Unauthorized("the device token is not valid (logged out or never issued)")
        await self.store.touch_device(device["_id"], self.rt.clock.now(), LAST_SEEN_EVERY)
        return web.Response(status=200, headers={"X-User-Id": device["user_id"], "X-Device-Id": device["_id"]})
