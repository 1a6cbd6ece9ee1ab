"""Deleting an account: a fresh code mailed for that purpose, then one write that records the
deletion with its `account-deleted` event, then every device revoked and the user removed.

The event rides in a tombstone document (`deleted_accounts`, keyed by a digest of the user id)
that outlives the user's documents; files, trash and billing erase their part when it arrives.
auth consumes it too and runs the same idempotent erase, which finishes the job if the
request died between the tombstone and the erase."""

from aiohttp import web
from pydantic import BaseModel, Field

from osmcloud_common.errors import Unauthorized
from osmcloud_common.events import AccountDeleted
from osmcloud_common.http import identity, json_body
from osmcloud_common.logging import get_logger
from osmcloud_common.runtime import Runtime

from .browser_sessions import clear_session_cookies
from .codes import Codes
from .domain import Purpose
from .limits import RequestLimits
from .routes import client_address
from .store import AuthStore

log = get_logger(__name__)


class DeleteRequest(BaseModel):
    code: str = Field(max_length=32)


class AccountDeletion:
    def __init__(self, runtime: Runtime, store: AuthStore, codes: Codes, limits: RequestLimits) -> None:
        self.rt, self.store, self.codes, self.limits = runtime, store, codes, limits

    def register(self, app: web.Application) -> None:
        app.router.add_post("/api/auth/account/deletion-codes", self.request_code)
        app.router.add_post("/api/auth/account/delete", self.delete)

    def register_events(self) -> None:
        """Before the app is created: the consumer is built from the registered handlers."""
        self.rt.on_account_deleted(self.erase)

    async def _email_of(self, user_id: str) -> str:
        user = await self.store.user(user_id)
        if user is None:
            raise Unauthorized("this account no longer exists")
        return user["email"]

    async def request_code(self, request: web.Request) -> web.Response:
        who = identity(request)
        email = await self._email_of(who.user_id)
        sent = await self.codes.issue(email, Purpose.DELETE_ACCOUNT, client_address(request))
        return web.json_response(sent, status=202)

    async def delete(self, request: web.Request) -> web.Response:
        who = identity(request)
        body = await json_body(request, DeleteRequest)
        email = await self._email_of(who.user_id)
        await self.codes.check(email, Purpose.DELETE_ACCOUNT, body.code.strip(), client_address(request))
        await self.delete_account(who.user_id)
        response = web.json_response({"status": "deleted", "user_id": who.user_id})
        clear_session_cookies(response)
        return response

    async def delete_account(self, user_id: str) -> None:
        """After the deletion code was accepted (native API and OsmAnd's delete-account alike)."""
        event = self.rt.event(AccountDeleted(), user_id)
        if await self.store.record_deletion(user_id, self.rt.clock.now(), [event]):
            self.rt.events_written()
        removed = await self.erase(user_id)
        log.info("account deleted", user_id=user_id, documents=removed)

    async def erase(self, user_id: str) -> int:
        """Idempotent: revokes every device and removes everything of the user in auth."""
        return await self.store.erase_account(user_id, self.limits.forget_email)
