"""Billing's HTTP API: Start activation, purchases, store notifications, the account view."""

from aiohttp import web
from pydantic import BaseModel, Field

from osmcloud_common.errors import BadRequest, Conflict, NotFound
from osmcloud_common.http import identity, json_body
from osmcloud_common.runtime import Runtime

from .lifecycle import Plans, Transition, activate_start, apply_purchase
from .plan_changes import change_plan
from .receipts import ReceiptVerifier, VerifiedPurchase
from .settings import BillingSettings
from .store import BillingStore, OrderLinkedElsewhere, subscription_of


class PurchaseRequest(BaseModel):
    platform: str = Field(min_length=1, max_length=32)
    product_id: str = Field(min_length=1, max_length=200)
    order_id: str = Field(min_length=1, max_length=200)
    receipt: str = Field(min_length=1, max_length=20_000)


class StoreNotification(BaseModel):
    receipt: str = Field(min_length=1, max_length=20_000)


def _iso(value):
    return value.isoformat() if value else None


def order_view(doc: dict) -> dict:
    return {"platform": doc["platform"], "order_id": doc["order_id"], "product_id": doc["product_id"],
            "linked_at": _iso(doc["linked_at"]), "expires_at": _iso(doc.get("expires_at"))}


class BillingRoutes:
    def __init__(self, runtime: Runtime, store: BillingStore, plans: Plans, verifier: ReceiptVerifier,
                 settings: BillingSettings) -> None:
        self.rt, self.store, self.plans, self.verifier, self.settings = runtime, store, plans, verifier, settings

    def register(self, app: web.Application) -> None:
        app.router.add_post("/api/billing/start", self.activate_start)
        app.router.add_post("/api/billing/purchases", self.purchase)
        app.router.add_post("/api/billing/notifications/{platform}", self.notification)
        app.router.add_get("/api/billing/account", self.account)

    async def _view(self, user_id: str) -> dict:
        doc = await self.store.account(user_id)
        sub = subscription_of(doc)
        return {"plan": sub.plan, "status": sub.view_status, "expires_at": _iso(sub.expires_at),
                "grace_until": _iso(sub.grace_until), "usage": doc.get("usage"),
                "orders": [order_view(o) for o in await self.store.orders_of(user_id)]}

    async def _apply(self, user_id: str, decide) -> Transition:
        """Decides on the current state and writes the result (plan_changes.py)."""
        return await change_plan(self.rt, self.store, self.plans, user_id, decide)

    async def activate_start(self, request: web.Request) -> web.Response:
        who = identity(request)
        await self.store.ensure_account(who.user_id, self.rt.clock.now())
        transition = await self._apply(who.user_id, activate_start)
        return web.json_response(await self._view(who.user_id), status=201 if transition.event else 200)

    def _verified(self, platform: str, receipt: str) -> VerifiedPurchase:
        purchase = self.verifier.verify(platform, receipt)
        if purchase.product_id not in self.settings.pro_product_ids:
            raise BadRequest(f"unknown product '{purchase.product_id}'; known: "
                             f"{', '.join(sorted(self.settings.pro_product_ids))}", code="unknown_product")
        return purchase

    async def purchase(self, request: web.Request) -> web.Response:
        who = identity(request)
        body = await json_body(request, PurchaseRequest)
        if body.product_id not in self.settings.pro_product_ids:
            raise BadRequest(f"unknown product '{body.product_id}'", code="unknown_product")
        purchase = self._verified(body.platform, body.receipt)
        if (purchase.order_id, purchase.product_id) != (body.order_id, body.product_id):
            raise BadRequest("the receipt is for another order or product", code="receipt_mismatch")
        now = self.rt.clock.now()
        if purchase.expires_at <= now:
            raise Conflict("the receipt has already expired; renew the subscription in the store",
                           code="receipt_expired")
        transition = await self.link_purchase(who.user_id, purchase, now)
        return web.json_response(await self._view(who.user_id), status=201 if transition.event else 200)

    async def link_purchase(self, user_id: str, purchase: VerifiedPurchase, now) -> Transition:
        """A verified purchase: its order linked to the account (one account per order), and
        the plan it grants applied with its event. Also OsmAnd's orderid path (osmand_orders)."""
        await self.store.ensure_account(user_id, now)
        try:
            await self.store.link_order(user_id, purchase, now)
        except OrderLinkedElsewhere:
            raise Conflict("this order is already linked to another account", code="order_linked_elsewhere")
        return await self._apply(user_id, lambda sub, plans: apply_purchase(sub, purchase, now, plans))

    async def notification(self, request: web.Request) -> web.Response:
        """A store tells us about a renewal. Authenticated by the receipt's signature, not by
        a device token; only orders already linked to an account are accepted."""
        platform = request.match_info["platform"]
        body = await json_body(request, StoreNotification)
        purchase = self._verified(platform, body.receipt)
        order = await self.store.order(platform, purchase.order_id)
        if order is None:
            raise NotFound(f"unknown order '{purchase.order_id}': it was never linked to an account",
                           code="unknown_order")
        now = self.rt.clock.now()
        if purchase.expires_at <= now:
            raise Conflict("the receipt has already expired", code="receipt_expired")
        await self.store.link_order(order["user_id"], purchase, now)
        transition = await self._apply(order["user_id"],
                                       lambda sub, plans: apply_purchase(sub, purchase, now, plans))
        return web.json_response({"status": "applied" if transition.event else "unchanged",
                                  "event": transition.event.event_type if transition.event else None})

    async def account(self, request: web.Request) -> web.Response:
        who = identity(request)
        await self.store.ensure_account(who.user_id, self.rt.clock.now())
        return web.json_response(await self._view(who.user_id))
