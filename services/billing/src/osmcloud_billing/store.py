"""Billing's storage adapter: accounts (plan, status, usage projection) and linked orders."""

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from osmcloud_common.outbox import with_events

from .errors import OrderLinkedElsewhere
from .lifecycle import Subscription
from .receipts import VerifiedPurchase


def subscription_of(doc: dict[str, Any]) -> Subscription:
    return Subscription(plan=doc.get("plan"), status=doc.get("status", "none"), expires_at=doc.get("expires_at"),
                        grace_until=doc.get("grace_until"))


Documents = AsyncCollection[dict[str, Any]]


class BillingStore:
    def __init__(self, accounts: Documents, orders: Documents) -> None:
        self.accounts, self.orders = accounts, orders

    async def create_indexes(self) -> None:
        await self.accounts.create_index([("status", ASCENDING), ("expires_at", ASCENDING)])
        await self.accounts.create_index([("status", ASCENDING), ("grace_until", ASCENDING)])
        await self.orders.create_index([("user_id", ASCENDING)])
        await self.orders.create_index([("order_id", ASCENDING)])

    async def ensure_account(self, user_id: str, now: datetime) -> None:
        try:
            await self.accounts.insert_one({"_id": user_id, "user_id": user_id, "plan": None, "status": "none",
                                            "created_at": now, "expires_at": None, "grace_until": None,
                                            "usage": None})
        except DuplicateKeyError:
            pass

    async def account(self, user_id: str) -> dict[str, Any] | None:
        return await self.accounts.find_one({"_id": user_id}, {"_outbox": 0})

    async def transition(self, user_id: str, before: Subscription, after: Subscription, events: list[dict[str, Any]],
                         also: dict[str, Any] | None = None, expect: dict[str, Any] | None = None) -> bool:
        """Moves the account from `before` to `after` with its event in one write, only if it
        is still in `before` (two replicas or two requests never apply one transition twice).
        `also`: more fields set in the same write (an operator's grant, see operator_plans.py);
        `expect`: more fields the account must still have (the overrides the event was made with)."""
        result = await self.accounts.update_one(
            {"_id": user_id, "plan": before.plan, "status": before.status, "expires_at": before.expires_at,
             "grace_until": before.grace_until, **(expect or {})},
            with_events({"$set": {"plan": after.plan, "status": after.status, "expires_at": after.expires_at,
                                  "grace_until": after.grace_until, **(also or {})}}, events))
        return result.modified_count == 1

    async def due(self, now: datetime, limit: int = 100) -> list[dict[str, Any]]:
        """Accounts with a passed deadline: Pro expiring or a grace year ending."""
        query = {"plan": "pro", "$or": [{"status": "active", "expires_at": {"$lte": now}},
                                        {"status": "grace", "grace_until": {"$lte": now}}]}
        return await self.accounts.find(query, {"_outbox": 0}).limit(limit).to_list(None)

    async def link_order(self, user_id: str, purchase: VerifiedPurchase, now: datetime) -> dict[str, Any]:
        """One order belongs to one account, atomically (the order key is the document id)."""
        order_key = f"{purchase.platform}:{purchase.order_id}"
        fields = {"platform": purchase.platform, "order_id": purchase.order_id, "product_id": purchase.product_id}
        try:
            await self.orders.insert_one({"_id": order_key, "user_id": user_id, **fields, "linked_at": now,
                                          "expires_at": purchase.expires_at})
        except DuplicateKeyError:
            existing = await self.orders.find_one({"_id": order_key})
            if existing is not None and existing["user_id"] != user_id:
                raise OrderLinkedElsewhere() from None  # the duplicate key IS the refusal
        await self.orders.update_one({"_id": order_key, "expires_at": {"$lt": purchase.expires_at}},
                                     {"$set": {"expires_at": purchase.expires_at}})
        linked = await self.orders.find_one({"_id": order_key})
        if linked is None:  # its account's data was erased meanwhile
            raise LookupError(f"order {order_key} was removed while it was being linked")
        return linked

    async def order(self, platform: str, order_id: str) -> dict[str, Any] | None:
        return await self.orders.find_one({"_id": f"{platform}:{order_id}"})

    async def orders_by_order_id(self, order_id: str) -> list[dict[str, Any]]:
        """Orders with this store order id, whatever the platform (OsmAnd's apps send no platform)."""
        return await self.orders.find({"order_id": order_id}).to_list(None)

    async def orders_of(self, user_id: str) -> list[dict[str, Any]]:
        return await self.orders.find({"user_id": user_id}).sort("linked_at", 1).to_list(None)

    async def record_usage(self, user_id: str, sequence: int, usage: dict[str, Any]) -> bool:
        """Keeps the newest usage figures; an older or repeated event changes nothing. False
        when the account has no document yet (or its figures are newer)."""
        result = await self.accounts.update_one(
            {"_id": user_id, "$or": [{"usage": None}, {"usage.sequence": {"$lt": sequence}}]},
            {"$set": {"usage": {"sequence": sequence, **usage}}})
        return result.matched_count == 1
