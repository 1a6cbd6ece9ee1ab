"""Billing's HTTP API: plan activation and the account's plan view."""

from aiohttp import web

from osmcloud_common.errors import Conflict
from osmcloud_common.events import SubscriptionActivated
from osmcloud_common.http import identity
from osmcloud_common.runtime import Runtime

from .plans import start_entitlement
from .settings import BillingSettings
from .store import BillingStore


def account_view(doc: dict) -> dict:
    def iso(value):
        return value.isoformat() if value else None
    return {"plan": doc.get("plan"), "status": doc.get("status", "none"), "expires_at": iso(doc.get("expires_at")),
            "grace_until": iso(doc.get("grace_until")), "usage": doc.get("usage")}


class BillingRoutes:
    def __init__(self, runtime: Runtime, store: BillingStore, settings: BillingSettings) -> None:
        self.rt, self.store, self.settings = runtime, store, settings

    def register(self, app: web.Application) -> None:
        app.router.add_post("/api/billing/start", self.activate_start)
        app.router.add_get("/api/billing/account", self.account)

    async def activate_start(self, request: web.Request) -> web.Response:
        who = identity(request)
        now = self.rt.clock.now()
        await self.store.ensure_account(who.user_id, now)
        event = self.rt.event(SubscriptionActivated(entitlement=start_entitlement(self.settings)), who.user_id)
        if await self.store.activate_start(who.user_id, now, [event]):
            self.rt.events_written()
            return web.json_response(account_view(await self.store.account(who.user_id)), status=201)
        doc = await self.store.account(who.user_id)
        if doc.get("plan") == "start":
            return web.json_response(account_view(doc), status=200)
        raise Conflict(f"the Start plan is not available to an account that has Pro ({doc.get('status')})",
                       code="start_not_available")

    async def account(self, request: web.Request) -> web.Response:
        who = identity(request)
        await self.store.ensure_account(who.user_id, self.rt.clock.now())
        return web.json_response(account_view(await self.store.account(who.user_id)))
