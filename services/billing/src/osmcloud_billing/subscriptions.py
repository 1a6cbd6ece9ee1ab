"""Billing's application layer: the subscription use cases both APIs call (native routes,
OsmAnd's orderid through osmand_orders, the sign-up handler). Each decides on the account's
current state with lifecycle.py and writes the result with its event in one document (the
outbox), then hands the event to files, whose copy of the plan the client's next upload reads."""

from datetime import datetime

from osmcloud_common.clock import Clock
from osmcloud_common.events import AccountRegistered, Event
from osmcloud_common.publisher import EventPublisher

from .errors import ReceiptExpired, ReceiptMismatch, UnknownOrder, UnknownProduct
from .lifecycle import Plans, Subscription, Transition, activate_start, apply_purchase
from .plan_changes import Decide, change_plan
from .ports import BillingStorePort
from .receipts import ReceiptVerifier, VerifiedPurchase

VIA_OSMAND = "osmand"


class Subscriptions:
    def __init__(self, store: BillingStorePort, publisher: EventPublisher, clock: Clock, plans: Plans,
                 verifier: ReceiptVerifier, pro_products: frozenset[str]) -> None:
        self.store, self.publisher, self.clock, self.plans = store, publisher, clock, plans
        self.verifier, self.pro_products = verifier, pro_products

    async def apply(self, user_id: str, decide: Decide) -> Transition:
        """Decides on the current state (with the account's overrides) and writes the result
        with its event, handed to files; retried if the state moved (plan_changes.py)."""
        return await change_plan(self.store, self.publisher, self.plans, user_id, decide)

    async def open_account(self, user_id: str) -> None:
        """The account's document, made on first sight (before any plan)."""
        await self.store.ensure_account(user_id, self.clock.now())

    async def activate_start(self, user_id: str) -> Transition:
        await self.open_account(user_id)
        return await self.apply(user_id, activate_start)

    def verified(self, platform: str, receipt: str) -> VerifiedPurchase:
        """The store's word on a receipt, for a product that grants Pro."""
        purchase = self.verifier.verify(platform, receipt)
        if purchase.product_id not in self.pro_products:
            raise UnknownProduct(f"unknown product '{purchase.product_id}'; known: "
                                 f"{', '.join(sorted(self.pro_products))}")
        return purchase

    async def purchase(self, user_id: str, platform: str, product_id: str, order_id: str,
                       receipt: str) -> Transition:
        """A purchase the device reports with its receipt (POST /api/billing/purchases)."""
        if product_id not in self.pro_products:
            raise UnknownProduct(f"unknown product '{product_id}'")
        purchase = self.verified(platform, receipt)
        if (purchase.order_id, purchase.product_id) != (order_id, product_id):
            raise ReceiptMismatch("the receipt is for another order or product")
        now = self.clock.now()
        if purchase.expires_at <= now:
            raise ReceiptExpired("the receipt has already expired; renew the subscription in the store")
        return await self.link_purchase(user_id, purchase, now)

    async def link_purchase(self, user_id: str, purchase: VerifiedPurchase, now: datetime) -> Transition:
        """A verified purchase: its order linked to the account (one account per order), and
        the plan it grants applied with its event. Also OsmAnd's orderid path (osmand_orders)."""
        await self.store.ensure_account(user_id, now)
        await self.store.link_order(user_id, purchase, now)  # OrderLinkedElsewhere
        return await self.apply(user_id, lambda sub, plans: apply_purchase(sub, purchase, now, plans))

    async def store_notification(self, platform: str, receipt: str) -> Transition:
        """A store tells us about a renewal. Authenticated by the receipt's signature, not by
        a device token; only orders already linked to an account are accepted."""
        purchase = self.verified(platform, receipt)
        order = await self.store.order(platform, purchase.order_id)
        if order is None:
            raise UnknownOrder(f"unknown order '{purchase.order_id}': it was never linked to an account")
        now = self.clock.now()
        if purchase.expires_at <= now:
            raise ReceiptExpired("the receipt has already expired")
        await self.store.link_order(order["user_id"], purchase, now)
        return await self.apply(order["user_id"], lambda sub, plans: apply_purchase(sub, purchase, now, plans))

    async def start_for_osmand_signup(self, event: Event) -> None:
        """Accounts that sign up through OsmAnd's /userdata/ API: the app never asks for a plan,
        so they get what the reference gives a registered account without a subscription — the
        Start allowance, activated as POST /api/billing/start does. Idempotent: only an account
        without a plan gets it, so a repeated `account-registered` changes nothing and an
        account that already has Pro keeps it."""
        payload = event.payload()
        if not isinstance(payload, AccountRegistered) or payload.via != VIA_OSMAND:
            return
        # the app uploads right after signing up: files knows the plan before the sign-up answers
        await self.apply(event.user_id, _start_if_no_plan)


def _start_if_no_plan(sub: Subscription, plans: Plans) -> Transition:
    return Transition(sub, None) if sub.plan is not None else activate_start(sub, plans)
