"""Billing's HTTP API: Start activation, purchases, store notifications, the account view, and
auth's internal orderid check. The one place billing's domain errors become answers
(`native_error`); the use cases live in subscriptions.py and osmand_orders.py."""

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from osmcloud_common.domain_errors import status_mapper
from osmcloud_common.http import identity, json_body
from osmcloud_common.logging import get_logger

from .bootstrap import Billing
from .errors import (
    EndInPast,
    OperatorPlanRefused,
    OrderLinkedElsewhere,
    ReceiptExpired,
    ReceiptMismatch,
    ReceiptRejected,
    StartNotAvailable,
    SubscriptionBusy,
    UnknownAccount,
    UnknownOrder,
    UnknownProduct,
)
from .store import subscription_of

log = get_logger(__name__)

native_error = status_mapper({
    StartNotAvailable: 409, ReceiptExpired: 409, OrderLinkedElsewhere: 409, SubscriptionBusy: 409,
    ReceiptRejected: 400, UnknownProduct: 400, ReceiptMismatch: 400, UnknownOrder: 404,
    # an operator's requests (admin_routes.py)
    UnknownAccount: 404, EndInPast: 409, OperatorPlanRefused: 400,
})


class PurchaseRequest(BaseModel):
    platform: str = Field(min_length=1, max_length=32)
    product_id: str = Field(min_length=1, max_length=200)
    order_id: str = Field(min_length=1, max_length=200)
    receipt: str = Field(min_length=1, max_length=20_000)


class StoreNotification(BaseModel):
    receipt: str = Field(min_length=1, max_length=20_000)


class OrderCheck(BaseModel):
    orderid: str = Field(min_length=1, max_length=20_000)
    user_id: str | None = Field(default=None, max_length=200)  # None: before the account exists
    link: bool = False  # False: only say whether it could be linked


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def order_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {"platform": doc["platform"], "order_id": doc["order_id"], "product_id": doc["product_id"],
            "linked_at": _iso(doc["linked_at"]), "expires_at": _iso(doc.get("expires_at"))}


class BillingRoutes:
    def __init__(self, billing: Billing) -> None:
        self.billing, self.store, self.subscriptions = billing, billing.store, billing.subscriptions

    def register(self, app: web.Application) -> None:
        app.router.add_post("/api/billing/start", self.activate_start)
        app.router.add_post("/api/billing/purchases", self.purchase)
        app.router.add_post("/api/billing/notifications/{platform}", self.notification)
        app.router.add_get("/api/billing/account", self.account)
        # OsmAnd's orderid, for auth's /userdata/ endpoints (service to service with the
        # gateway secret; nginx answers /internal/ with 404)
        app.router.add_post("/internal/osmand-order", self.osmand_order)

    async def _view(self, user_id: str) -> dict[str, Any]:
        doc = await self.store.account(user_id) or {}
        sub = subscription_of(doc)
        return {"plan": sub.plan, "status": sub.view_status, "expires_at": _iso(sub.expires_at),
                "grace_until": _iso(sub.grace_until), "usage": doc.get("usage"),
                "orders": [order_view(o) for o in await self.store.orders_of(user_id)]}

    async def activate_start(self, request: web.Request) -> web.Response:
        who = identity(request)
        transition = await self.subscriptions.activate_start(who.user_id)
        return web.json_response(await self._view(who.user_id), status=201 if transition.event else 200)

    async def purchase(self, request: web.Request) -> web.Response:
        who = identity(request)
        body = await json_body(request, PurchaseRequest)
        assert isinstance(body, PurchaseRequest)
        transition = await self.subscriptions.purchase(who.user_id, body.platform, body.product_id, body.order_id,
                                                       body.receipt)
        return web.json_response(await self._view(who.user_id), status=201 if transition.event else 200)

    async def notification(self, request: web.Request) -> web.Response:
        body = await json_body(request, StoreNotification)
        assert isinstance(body, StoreNotification)
        transition = await self.subscriptions.store_notification(request.match_info["platform"], body.receipt)
        return web.json_response({"status": "applied" if transition.event else "unchanged",
                                  "event": transition.event.event_type if transition.event else None})

    async def account(self, request: web.Request) -> web.Response:
        who = identity(request)
        await self.subscriptions.open_account(who.user_id)
        return web.json_response(await self._view(who.user_id))

    async def osmand_order(self, request: web.Request) -> web.Response:
        body = await json_body(request, OrderCheck)
        assert isinstance(body, OrderCheck)
        verdict = await self.billing.orders.decide(body.orderid.strip(), body.user_id,
                                                   body.link and body.user_id is not None)
        log.info("osmand order checked", user_id=body.user_id, outcome=verdict.outcome)
        return web.json_response({"outcome": verdict.outcome, "message": verdict.message})
