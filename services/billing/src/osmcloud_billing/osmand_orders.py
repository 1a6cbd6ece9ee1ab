"""OsmAnd's `orderid`, checked and linked by billing for auth's /userdata/ endpoints
(user-register, device-register, user-update-orderid): `POST /internal/osmand-order`,
service to service with the gateway secret (nginx answers /internal/ with 404).

What an orderid is here. OsmAnd's apps send the store's order reference and nothing else (no
platform, no receipt); the reference server looks it up among purchases it learned about
earlier. Ours accepts two forms:
  * an order token the store verifies on its own — with the sandbox store, a signed receipt
    (`receipts.py`): verified by the same verifier, and linked and applied exactly as
    `POST /api/billing/purchases` does (order linked to one account, subscription-activated
    or -renewed through the outbox);
  * a bare order id billing already knows (linked by a native purchase or an earlier call):
    accepted for the account it is linked to.
Outcomes: linked (or valid, when only checked), unknown / not_eligible, other_account,
expired — auth turns them into the protocol's codes."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from osmcloud_common.errors import Conflict
from osmcloud_common.http import json_body
from osmcloud_common.logging import get_logger
from osmcloud_common.runtime import Runtime

from .receipts import ReceiptRejected, ReceiptVerifier, VerifiedPurchase
from .routes import BillingRoutes
from .settings import BillingSettings
from .store import BillingStore

log = get_logger(__name__)

Outcome = Literal["linked", "valid", "unknown", "not_eligible", "other_account", "expired"]


@dataclass(frozen=True)
class OrderVerdict:
    outcome: Outcome
    message: str


def judge_verified_order(purchase: VerifiedPurchase, existing: dict[str, Any] | None, user_id: str | None,
                         now: datetime, pro_products: frozenset[str]) -> OrderVerdict | None:
    """A verified order token: why it cannot serve this account, or None when it can."""
    if purchase.product_id not in pro_products:
        return OrderVerdict("not_eligible", f"the order's product '{purchase.product_id}' is not eligible for the cloud")
    if existing is not None and existing["user_id"] != user_id:
        return OrderVerdict("other_account", "this order is already linked to another account")
    latest = max([purchase.expires_at] + ([existing["expires_at"]] if existing and existing.get("expires_at") else []))
    if latest <= now:
        return OrderVerdict("expired", f"the subscription of this order expired on {latest:%Y-%m-%d}")
    return None


def judge_known_orders(orders: list[dict[str, Any]], user_id: str | None, now: datetime) -> OrderVerdict:
    """A bare order id, judged on the orders billing has under that id."""
    if not orders:
        return OrderVerdict("unknown", "no subscription present: this order is not known to the server")
    mine = [o for o in orders if user_id is not None and o["user_id"] == user_id]
    if not mine:
        return OrderVerdict("other_account", "this order is already linked to another account")
    if all(o.get("expires_at") is not None and o["expires_at"] <= now for o in mine):
        return OrderVerdict("expired", "the subscription of this order has expired")
    return OrderVerdict("linked", "the order is linked to this account")


class OrderCheck(BaseModel):
    orderid: str = Field(min_length=1, max_length=20_000)
    user_id: str | None = Field(default=None, max_length=200)  # None: before the account exists
    link: bool = False  # False: only say whether it could be linked


class OsmandOrders:
    def __init__(self, runtime: Runtime, store: BillingStore, verifier: ReceiptVerifier, settings: BillingSettings,
                 routes: BillingRoutes) -> None:
        self.rt, self.store, self.verifier, self.settings, self.routes = runtime, store, verifier, settings, routes

    def register(self, app: web.Application) -> None:
        app.router.add_post("/internal/osmand-order", self.check)

    async def check(self, request: web.Request) -> web.Response:
        body = await json_body(request, OrderCheck)
        verdict = await self.decide(body.orderid.strip(), body.user_id, body.link and body.user_id is not None)
        log.info("osmand order checked", user_id=body.user_id, outcome=verdict.outcome)
        return web.json_response({"outcome": verdict.outcome, "message": verdict.message})

    async def decide(self, orderid: str, user_id: str | None, link: bool) -> OrderVerdict:
        now = self.rt.clock.now()
        try:
            purchase = self.verifier.verify_order_token(orderid)
        except ReceiptRejected:
            return judge_known_orders(await self.store.orders_by_order_id(orderid), user_id, now)
        existing = await self.store.order(purchase.platform, purchase.order_id)
        refusal = judge_verified_order(purchase, existing, user_id, now, self.settings.pro_product_ids)
        if refusal is not None:
            return refusal
        if not link:
            return OrderVerdict("valid", "the order is valid and can be linked")
        try:
            await self.routes.link_purchase(user_id, purchase, now)
        except Conflict as exc:  # linked elsewhere meanwhile, or expired on the way
            outcome: Outcome = "other_account" if exc.code == "order_linked_elsewhere" else "expired"
            return OrderVerdict(outcome, exc.message)
        return OrderVerdict("linked", "the order is linked to this account; its plan applies")
