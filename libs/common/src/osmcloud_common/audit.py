"""The audit log: who did what, when and from where (docs/operators.md "Audit log").

Every service keeps its own entries (the actions it serves: admin calls, sign-ins, plan
changes) in its `audit_log` collection; the admin API answers them per service and
`osmcloud-admin audit` merges them. An entry holds no secret: an action name, the actor (a
user id, "operator:<digest prefix>" or "system"), the account it concerns, the client
address, the outcome and a few named fields (never a token, code or receipt). Entries are
kept AUDIT_RETENTION_DAYS and then purged by a periodic delete (no TTL index: the local
MongoDB-protocol server has none). When an account is deleted its entries go, but for one
minimal record that a deletion happened: keyed, like deleted_accounts.py, by a digest of the
user id (no id, no e-mail kept), so the operator who knows the id can still find it. An entry
about an account written after its erase (an operator's lookup of the deleted id, a call whose
record lands after `account-deleted` came back from Kafka) goes the same way at once."""

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING

from .clock import Clock
from .deleted_accounts import DeletedAccounts, account_key
from .logging import get_logger
from .mongo import Collection, delete_all

log = get_logger(__name__)

MAX_PAGE = 500
PURGE_EVERY_SECONDS = 3600.0
# fields an entry's detail may never carry, whatever a caller passes
SECRET_WORDS = ("token", "code_value", "secret", "password", "receipt", "authorization", "cookie")


def _clean(detail: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (detail or {}).items() if not any(w in k.lower() for w in SECRET_WORDS)}


def entry_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], "at": doc["at"].isoformat(), "service": doc.get("service"), "action": doc["action"],
            "actor": doc.get("actor"), "user_id": doc.get("user_id") or doc.get("account"),
            "address": doc.get("address"), "outcome": doc.get("outcome"), "detail": doc.get("detail") or {}}


class AuditLog:
    def __init__(self, collection: Collection, clock: Clock, service: str, retention_days: float,
                 deleted: DeletedAccounts | None = None) -> None:
        self.collection, self.clock, self.service, self.deleted = collection, clock, service, deleted
        self.retention = timedelta(days=retention_days)

    async def create_indexes(self) -> None:
        await self.collection.create_index([("at", ASCENDING)])
        await self.collection.create_index([("user_id", ASCENDING), ("at", DESCENDING)])

    async def record(self, action: str, *, actor: str, user_id: str | None = None, address: str | None = None,
                     outcome: str = "ok", detail: dict[str, Any] | None = None, entry_id: str | None = None) -> None:
        """Never fails the action it records: a write that fails is logged (the action stands)."""
        doc = {"_id": entry_id or uuid.uuid4().hex, "at": self.clock.now(), "service": self.service,
               "action": action, "actor": actor, "address": address, "outcome": outcome, "detail": _clean(detail)}
        if user_id:
            doc["user_id"] = user_id
        try:
            await self.collection.update_one({"_id": doc["_id"]}, {"$setOnInsert": doc}, upsert=True)
            # checked after the write: a deletion remembered before this check is seen here, one
            # remembered after it is followed by the erase, which finds this entry
            if user_id and self.deleted is not None and await self.deleted.contains(user_id):
                await self.collection.delete_one({"_id": doc["_id"]})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("audit entry not written", action=action, error=repr(exc))

    async def query(self, *, user_id: str | None = None, action: str | None = None, since: datetime | None = None,
                    limit: int = 100) -> list[dict[str, Any]]:
        query: dict[str, Any] = {}
        if user_id:
            query["$or"] = [{"user_id": user_id}, {"account": account_key(user_id)}]
        if action:
            query["action"] = action
        if since:
            query["at"] = {"$gte": since}
        cursor = self.collection.find(query).sort("at", DESCENDING).limit(max(1, min(limit, MAX_PAGE)))
        return [entry_view(doc) for doc in await cursor.to_list(None)]

    async def erase(self, user_id: str) -> None:
        """The account's entries go; a minimal record that it was deleted stays (idempotent)."""
        await delete_all(self.collection, {"user_id": user_id})
        key = account_key(user_id)
        await self.collection.update_one(
            {"_id": f"deleted:{key}"},
            {"$setOnInsert": {"at": self.clock.now(), "service": self.service, "action": "account-deleted",
                              "actor": "system", "account": key, "outcome": "ok", "detail": {}}},
            upsert=True)

    async def purge(self) -> int:
        result = await self.collection.delete_many({"at": {"$lt": self.clock.now() - self.retention}})
        deleted: int = result.deleted_count  # Any when the collection is a SerializedCollection
        return deleted

    async def run_purge(self) -> None:
        while True:
            await self.purge()
            await asyncio.sleep(PURGE_EVERY_SECONDS)
