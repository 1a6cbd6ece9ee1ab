"""The clock that time-driven rules read (trash retention, grace periods).

Production uses the system clock. With TEST_CLOCK=true every service reads the system
clock plus an offset stored in one shared document, so a test that moves time forward
moves it for all services at once. It is test infrastructure: the only document that
several services read."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from .mongo import MongoClient

CLOCK_DB = "osmcloud_testclock"
CLOCK_COLLECTION = "clock"
CLOCK_ID = "offset"


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """For unit tests: time stands still until the test moves it."""

    def __init__(self, at: datetime | None = None) -> None:
        self._now = at or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


class SharedTestClock:
    """System time plus an offset shared through MongoDB, refreshed in the background; or,
    when a test freezes it, one fixed instant (so "one year minus one second" is exact)."""

    def __init__(self, mongo_client: MongoClient, refresh_seconds: float = 0.1) -> None:
        self._collection = mongo_client[CLOCK_DB][CLOCK_COLLECTION]
        self._refresh_seconds = refresh_seconds
        self._offset = timedelta(0)
        self._frozen_at: datetime | None = None
        self.set_at = 0.0  # `set_at` of the setting applied: what a service reports (report())

    def now(self) -> datetime:
        return self._frozen_at or datetime.now(UTC) + self._offset

    async def refresh(self) -> None:
        doc = await self._collection.find_one({"_id": CLOCK_ID}) or {}
        self._offset = timedelta(seconds=float(doc.get("seconds", 0)))
        frozen = doc.get("frozen_at")
        self._frozen_at = frozen.replace(tzinfo=UTC) if frozen is not None and frozen.tzinfo is None else frozen
        self.set_at = float(doc.get("set_at") or 0.0)

    def report(self) -> dict[str, Any]:
        """What this process's clock reads and which setting it applied (served on /healthz
        with TEST_CLOCK, so a test that moves the clock waits until every service has it)."""
        return {"now": self.now().isoformat(), "set_at": self.set_at}

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # Mongo away: keep the last known offset
                pass
            await asyncio.sleep(self._refresh_seconds)


async def shared_offset(mongo_client: MongoClient) -> timedelta:
    """Where the shared test clock stands now, relative to the system clock (tests that move
    it must move it from here, since earlier tests may have moved it already)."""
    doc = await mongo_client[CLOCK_DB][CLOCK_COLLECTION].find_one({"_id": CLOCK_ID}) or {}
    frozen = doc.get("frozen_at")
    if frozen is not None:
        at: datetime = frozen if frozen.tzinfo else frozen.replace(tzinfo=UTC)
        return at - datetime.now(UTC)
    return timedelta(seconds=float(doc.get("seconds", 0)))


async def set_shared_offset(mongo_client: MongoClient, offset: timedelta) -> float:
    """Moves the shared test clock (used by tests; services only read it); unfreezes it.
    Returns the setting's `set_at`, which services report once they apply it."""
    set_at = time.time()
    await mongo_client[CLOCK_DB][CLOCK_COLLECTION].update_one(
        {"_id": CLOCK_ID}, {"$set": {"seconds": offset.total_seconds(), "set_at": set_at},
                            "$unset": {"frozen_at": ""}}, upsert=True
    )
    return set_at


async def advance_shared_clock(mongo_client: MongoClient, delta: timedelta,
                               confirm: Callable[[float], Awaitable[object]] | None = None) -> None:
    """Moves the shared test clock `delta` past where it stands (earlier tests may have moved
    it already), then waits until every service has seen it: `confirm(set_at)` asks them
    (osmcloud_localstack.testing.clock_applied); without it, 0.35 s (they refresh every 0.1 s)."""
    set_at = await set_shared_offset(mongo_client, await shared_offset(mongo_client) + delta)
    await (confirm(set_at) if confirm is not None else asyncio.sleep(0.35))


async def freeze_shared_clock(mongo_client: MongoClient, at: datetime) -> float:
    """Stops the shared test clock at `at` (millisecond precision) until moved again; returns
    the setting's `set_at`."""
    set_at = time.time()
    await mongo_client[CLOCK_DB][CLOCK_COLLECTION].update_one(
        {"_id": CLOCK_ID}, {"$set": {"frozen_at": at, "set_at": set_at}}, upsert=True
    )
    return set_at
