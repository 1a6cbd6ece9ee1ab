"""Purging trash items for good: on expiry (a periodic job in every replica), on "delete
now" and on "empty trash".

A purge of a set of items, replica-safe and crash-safe:
1. claim each item by inserting a claim whose `_id` is the item's (unique: one winner);
2. write one batch document per user holding a `trash-item-purged` event per claimed item
   (the outbox: the relay publishes them; files then removes versions and blobs);
3. delete the items, then the claims.
Because items go before their claims, a claim won on an item that is gone means another
purge (or a restore) finished first: it is dropped without an event. A replica that dies
after 1 leaves claims without a batch: once the claim lease has passed, any replica
completes that batch from the claims alone (same batch id, and batch documents are kept
for twice the lease, so at most one batch document — one event per item — ever exists).
Claim leases use wall time, not the test clock, so moving the shared clock never makes a
fresh claim look stale."""

import asyncio
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from osmcloud_common.logging import get_logger
from osmcloud_common.runtime import Runtime

from .domain import PurgeReason, batch_payloads, chunks, emptied_payload, purge_claim, purge_lag_seconds
from .settings import TrashSettings
from .store import TrashStore

log = get_logger(__name__)


def wall_now() -> datetime:
    return datetime.now(UTC)


class Purger:
    def __init__(self, runtime: Runtime, store: TrashStore, settings: TrashSettings) -> None:
        self.rt, self.store, self.settings = runtime, store, settings
        self.replica = f"trash-{uuid.uuid4().hex[:8]}"
        self.purged: Counter | None = None
        self.lag: Histogram | None = None
        self.in_trash: Gauge | None = None

    def bind_metrics(self, registry: CollectorRegistry) -> None:
        self.purged = Counter("trash_items_purged", "trash items purged by this replica", ["reason"],
                              registry=registry)
        self.lag = Histogram("trash_purge_lag_seconds", "seconds between an item's expiry and its purge",
                             buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 3600, 86400), registry=registry)
        self.in_trash = Gauge("trash_items", "items in the trash (all users)", registry=registry)

    # ------------------------------------------------------------ purging a set of items
    async def purge(self, items: list[dict], reason: PurgeReason) -> list[str]:
        """Purges the items this call manages to claim; returns their ids."""
        purged: list[str] = []
        by_user: dict[str, list[dict]] = defaultdict(list)
        for item in items:
            by_user[item["user_id"]].append(item)
        for user_id, own in by_user.items():
            for chunk in chunks(own, self.settings.purge_batch_size):
                batch_id = uuid.uuid4().hex
                claims = [purge_claim(i, batch_id=batch_id, reason=reason, claimed_by=self.replica,
                                      claimed_at=wall_now()) for i in chunk]
                won = await self.store.claim_many(claims)
                won = await self._still_in_trash(won)
                if won:
                    await self.complete(batch_id, user_id, won)
                    purged += [c["_id"] for c in won]
        return purged

    async def _still_in_trash(self, claims: list[dict]) -> list[dict]:
        """Claims whose item is gone came after another purge (or a restore) had finished:
        that one removed the item before releasing its claim. Drop them."""
        present = await self.store.existing([c["_id"] for c in claims])
        await self.store.release_many([c["_id"] for c in claims if c["_id"] not in present])
        return [c for c in claims if c["_id"] in present]

    async def complete(self, batch_id: str, user_id: str, claims: list[dict]) -> None:
        """Steps 2 and 3 for one batch; idempotent, so a takeover may repeat them."""
        ids = sorted(c["_id"] for c in claims)
        events = [self.rt.event(p, user_id) for p in batch_payloads(claims)]
        written = await self.store.write_batch(batch_id, user_id, ids, self.rt.clock.now(), wall_now(), events)
        self.rt.events_written(self.store.batches, batch_id)
        await self.store.remove_items(ids)
        await self.store.release_many(ids)
        if written:
            now = self.rt.clock.now()
            for claim in claims:
                if self.purged is not None:
                    self.purged.labels(claim["reason"]).inc()
                if claim["reason"] == "expired" and self.lag is not None:
                    self.lag.observe(purge_lag_seconds(claim, now))
        log.info("trash items purged", batch_id=batch_id, count=len(ids), reason=claims[0]["reason"],
                 took_over=not written)

    async def empty(self, user_id: str) -> dict:
        items = await self.store.of_user(user_id)
        purged = await self.purge(items, "emptied")
        batch_id = f"emptied-{uuid.uuid4().hex}"
        await self.store.write_batch(batch_id, user_id, [], self.rt.clock.now(), wall_now(),
                                     [self.rt.event(emptied_payload(len(purged)), user_id)])
        self.rt.events_written(self.store.batches, batch_id)
        return {"purged": len(purged), "skipped": len(items) - len(purged)}

    # ------------------------------------------------------------ the periodic job
    async def take_over_stale_claims(self) -> int:
        """Completes purges and releases restores left behind by a replica that died."""
        stale = await self.store.stale_claims(wall_now() - timedelta(seconds=self.settings.claim_lease_seconds))
        batches: dict[str, list[dict]] = defaultdict(list)
        for claim in stale:
            if claim.get("action") == "purge":
                batches[claim["batch_id"]].append(claim)
            else:
                await self.store.release(claim["_id"], claim.get("action", "restore"))
        for batch_id, claims in batches.items():
            claims = await self._still_in_trash(claims)  # gone: that purge did finish
            if claims:
                await self.complete(batch_id, claims[0]["user_id"], claims)
        return len(stale)

    async def run_once(self) -> int:
        """One pass: take over stale claims, then purge every due item, a batch at a time."""
        await self.take_over_stale_claims()
        total = 0
        while True:
            due = await self.store.due(self.rt.clock.now(), self.settings.purge_batch_size)
            if not due:
                break
            purged = await self.purge(due, "expired")
            total += len(purged)
            if not purged:
                break  # what is left is claimed by others (a restore, another replica): next round
        await self.store.forget_relayed_batches(wall_now() - timedelta(seconds=2 * self.settings.claim_lease_seconds))
        if self.in_trash is not None:
            self.in_trash.set(await self.store.count())
        return total

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Mongo away: try again next round
                log.warning("purge round failed; will retry", error=repr(exc))
            await asyncio.sleep(self.settings.purge_interval_seconds)
