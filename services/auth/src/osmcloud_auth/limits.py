"""Hourly limits on mailed codes, per e-mail and per client address, kept in auth's database
so every replica counts the same requests.

Each key has one document `{_id: key, started_at, count, rev}`. A request reads it, lets the
pure rule (`domain.count_request`) decide, and writes the result only if nobody changed the
document meanwhile (compare-and-set on `rev`), so racing requests never pass the limit."""

from datetime import datetime, timedelta

from pymongo.errors import DuplicateKeyError

from .domain import Window, count_request, uncount_request

# A flood of requests for one key fights over one document; after this many lost races the
# request is simply refused as over the limit.
MAX_RACES = 25


def email_key(email: str) -> str:
    return f"email:{email}"


def address_key(address: str) -> str:
    return f"address:{address}"


class RequestLimits:
    def __init__(self, collection, window: timedelta = timedelta(hours=1)) -> None:
        self.collection, self.window = collection, window

    async def take(self, key: str, limit: int, now: datetime) -> datetime | None:
        """Counts one request; None when allowed, else when the window reopens."""
        for _ in range(MAX_RACES):
            doc = await self.collection.find_one({"_id": key})
            current = Window(doc["started_at"], doc["count"]) if doc else None
            after = count_request(current, now, limit, self.window)
            if after is None:
                return current.started_at + self.window
            if await self._swap(key, doc, after):
                return None
        return now + self.window

    async def give_back(self, key: str) -> None:
        """Un-counts a request that was refused later on (nothing was mailed)."""
        for _ in range(MAX_RACES):
            doc = await self.collection.find_one({"_id": key})
            if doc is None or doc["count"] <= 0:
                return
            if await self._swap(key, doc, uncount_request(Window(doc["started_at"], doc["count"]))):
                return

    async def _swap(self, key: str, seen: dict | None, window: Window) -> bool:
        fields = {"started_at": window.started_at, "count": window.count}
        if seen is None:
            try:
                await self.collection.insert_one({"_id": key, **fields, "rev": 1})
                return True
            except DuplicateKeyError:
                return False
        result = await self.collection.update_one({"_id": key, "rev": seen["rev"]},
                                                  {"$set": fields, "$inc": {"rev": 1}})
        return result.modified_count == 1

    async def forget(self, key: str) -> None:
        await self.collection.delete_one({"_id": key})

    async def purge(self, now: datetime) -> int:
        """Drops windows that have ended (they would restart at the next request anyway)."""
        result = await self.collection.delete_many({"started_at": {"$lt": now - self.window}})
        return result.deleted_count
