"""Hourly limits on mailed codes, per e-mail, per e-mail and client address, and per client address,
kept in auth's database so every replica counts the same requests.

Fixed windows: each key has one document `{_id: key, started_at, count}`; the first request
after a window ended opens a new one. Counting is a conditional update (count below the
limit, window still open), atomic on MongoDB and on the local stack's FerretDB (whose front
end, infra/ferretdb/serialize.go, runs one write per collection at a time), so racing requests
never pass the limit."""

import ipaddress
import re
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError


def email_key(email: str) -> str:
    return f"email:{email}"


def address_key(address: str | None) -> str:
    """The key of a client address: IPv4 as it is, IPv6 by its /64 (one subscriber's whole
    network), "address:unknown" when the gateway passed none."""
    if not address:
        return "address:unknown"
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return "address:unknown"
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return f"address:{ip.ipv4_mapped}"
        return f"address:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"address:{ip}"


def known_addresses_key(email: str) -> str:
    """Codes mailed to `email` on request from addresses it logged in from before."""
    return f"email:{email}|known"


def email_address_key(email: str, where: str) -> str:
    """Codes mailed to `email` on request from one address (`where`: an address_key)."""
    return f"email:{email}|{where}"


class RequestLimits:
    def __init__(self, collection: AsyncCollection[dict[str, Any]], window: timedelta = timedelta(hours=1)) -> None:
        self.collection, self.window = collection, window

    async def take(self, key: str, limit: int, now: datetime) -> datetime | None:
        """Counts one request; None when allowed, else when the window reopens."""
        for _ in range(2):  # the second round only after losing a race to create the document
            if await self._count_in_open_window(key, limit, now) or await self._open_new_window(key, now):
                return None
            try:
                await self.collection.insert_one({"_id": key, "started_at": now, "count": 1})
                return None
            except DuplicateKeyError:
                pass
            current = await self.collection.find_one({"_id": key})
            if current is not None and current["count"] >= limit:
                started_at: datetime = current["started_at"]
                return started_at + self.window
        return now + self.window

    async def _count_in_open_window(self, key: str, limit: int, now: datetime) -> bool:
        result = await self.collection.update_one(
            {"_id": key, "started_at": {"$gt": now - self.window}, "count": {"$lt": limit}}, {"$inc": {"count": 1}})
        return result.modified_count == 1

    async def _open_new_window(self, key: str, now: datetime) -> bool:
        result = await self.collection.update_one(
            {"_id": key, "started_at": {"$lte": now - self.window}}, {"$set": {"started_at": now, "count": 1}})
        return result.modified_count == 1

    async def give_back(self, key: str) -> None:
        """Un-counts a request that was refused further on (nothing was mailed)."""
        await self.collection.update_one({"_id": key, "count": {"$gt": 0}}, {"$inc": {"count": -1}})

    async def forget_email(self, email: str) -> None:
        """Drops every window keyed by this e-mail (alone or with an address)."""
        await self.collection.delete_many({"_id": {"$regex": "^" + re.escape(email_key(email)) + r"(\||$)"}})

    async def purge(self, now: datetime) -> int:
        """Drops windows that have ended (they would restart at the next request anyway)."""
        result = await self.collection.delete_many({"started_at": {"$lt": now - self.window}})
        return result.deleted_count
