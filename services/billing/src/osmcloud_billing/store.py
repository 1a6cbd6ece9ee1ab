"""Billing accounts in billing's own database: plan, status and a projection of usage."""

from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from osmcloud_common.outbox import with_events


class BillingStore:
    def __init__(self, accounts) -> None:
        self.accounts = accounts

    async def ensure_account(self, user_id: str, now: datetime) -> None:
        try:
            await self.accounts.insert_one({"_id": user_id, "user_id": user_id, "plan": None, "status": "none", "created_at": now,
                                            "expires_at": None, "grace_until": None, "usage": None})
        except DuplicateKeyError:
            pass

    async def account(self, user_id: str) -> dict[str, Any] | None:
        return await self.accounts.find_one({"_id": user_id}, {"_outbox": 0})

    async def activate_start(self, user_id: str, now: datetime, events: list[dict]) -> bool:
        """Activates Start only for an account without a plan; True when this call did it."""
        result = await self.accounts.update_one(
            {"_id": user_id, "plan": None},
            with_events({"$set": {"plan": "start", "status": "active", "activated_at": now}}, events))
        return result.modified_count == 1

    async def record_usage(self, user_id: str, sequence: int, usage: dict[str, Any]) -> None:
        """Keeps the newest usage figures; an older or repeated event changes nothing."""
        await self.accounts.update_one(
            {"_id": user_id, "$or": [{"usage": None}, {"usage.sequence": {"$lt": sequence}}]},
            {"$set": {"usage": {"sequence": sequence, **usage}}})
