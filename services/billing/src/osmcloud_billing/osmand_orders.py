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

from osmcloud_common.clock import Clock

from .errors import OrderLinkedElsewhere, ReceiptExpired, ReceiptRejected, SubscriptionBusy
from .ports import BillingStorePort
from .receipts import ReceiptVerifier, VerifiedPurchase
from .subscriptions import Subscriptions

Outcome = Literal["linked", "valid", "unknown", "not_eligible", "other_account", "expired"]


@dataclass(frozen=True)
class OrderVerdict:
    outcome: Outcome
    message: str


def judge_verified_order(purchase: VerifiedPurchase, existing: dict[str, Any] | None, user_id: str | None,
                         now: datetime, pro_products: frozenset[str]) -> OrderVerdict | None:
    """A verified order token: why it cannot serve this account, or None when it can."""
    if purchase.product_id not in pro_products:
        return OrderVerdict("not_eligible",
                            f"the order's product '{purchase.product_id}' is not eligible for the cloud")
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


class OsmandOrders:
    """The use case behind `POST /internal/osmand-order` (routes.py): judge an orderid for an
    account, and link it through the same purchase path as the native API."""

    def __init__(self, subscriptions: Subscriptions, store: BillingStorePort, verifier: ReceiptVerifier,
                 clock: Clock, pro_products: frozenset[str]) -> None:
        self.subscriptions, self.store, self.verifier = subscriptions, store, verifier
        self.clock, self.pro_products = clock, pro_products

    async def decide(self, orderid: str, user_id: str | None, link: bool) -> OrderVerdict:
        now = self.clock.now()
        try:
            purchase = self.verifier.verify_order_token(orderid)
        except ReceiptRejected:
            return judge_known_orders(await self.store.orders_by_order_id(orderid), user_id, now)
        existing = await self.store.order(purchase.platform, purchase.order_id)
        refusal = judge_verified_order(purchase, existing, user_id, now, self.pro_products)
        if refusal is not None:
            return refusal
        if not link or user_id is None:
            return OrderVerdict("valid", "the order is valid and can be linked")
        try:
            await self.subscriptions.link_purchase(user_id, purchase, now)
        except OrderLinkedElsewhere as exc:  # linked elsewhere meanwhile
            return OrderVerdict("other_account", exc.message)
        except (ReceiptExpired, SubscriptionBusy) as exc:  # expired on the way
            return OrderVerdict("expired", exc.message)
        return OrderVerdict("linked", "the order is linked to this account; its plan applies")
