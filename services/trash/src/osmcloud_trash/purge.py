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
Claim leases use wall time (`wall_clock`), not the test clock, so moving the shared clock never
makes a fresh claim look stale.

The store, the event publisher and both clocks are ports (bootstrap.py wires them), so the
crash points above are tested on fakes (tests/test_service_layer.py)."""

import asyncio
import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from osmcloud_common.clock import Clock, SystemClock
from osmcloud_common.logging import StepTimer, get_logger
from osmcloud_common.publisher import EventPublisher

from .domain import PurgeReason, batch_payloads, chunks, emptied_payload, purge_claim, purge_lag_seconds
from .ports import TrashStorePort
from .settings import TrashSettings

log = get_logger(__name__)


class Purger:
    def __init__(self, store: TrashStorePort, publisher: EventPublisher, clock: Clock, settings: TrashSettings,
                 wall_clock: Clock | None = None) -> None:
        self.store, self.publisher, self.clock, self.settings = store, publisher, clock, settings
        self.wall: Clock = wall_clock or SystemClock()
        self.replica = f"trash-{uuid.uuid4().hex[:8]}"
        self.purged: Counter | None = None
        self.lag: Histogram | None = None
        self.in_trash: Gauge | None = None
        self.last_pass: Gauge | None = None
        self._counted_at: float | None = None

    def bind_metrics(self, registry: CollectorRegistry) -> None:
        self.purged = Counter("trash_items_purged", "trash items purged by this replica", ["reason"],
                              registry=registry)
        self.lag = Histogram("trash_purge_lag_seconds", "seconds between an item's expiry and its purge",
                             buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 3600, 86400), registry=registry)
        self.in_trash = Gauge("trash_items", "items in the trash (all users)", registry=registry)
        # a purge that falls behind stops finishing passes (each pass purges everything due)
        self.last_pass = Gauge("trash_purge_last_pass_timestamp_seconds",
                               "when this replica last finished a purge pass (every due item purged)",
                               registry=registry)

    # ------------------------------------------------------------ purging a set of items
    async def purge(self, items: list[dict[str, Any]], reason: PurgeReason) -> list[str]:
        """Purges the items this call manages to claim; returns their ids. A chunk of items
        takes one claim insert, one check, one batch document per user and one removal,
        whatever the number of users in it."""
        purged: list[str] = []
        handed: list[dict[str, Any]] = []
        for chunk in chunks(items, self.settings.purge_batch_size):
            timer = StepTimer()
            batch_of = {user_id: uuid.uuid4().hex for user_id in sorted({i["user_id"] for i in chunk})}
            claims = [purge_claim(i, batch_id=batch_of[i["user_id"]], reason=reason, claimed_by=self.replica,
                                  claimed_at=self.wall.now()) for i in chunk]
            won = await self.store.claim_many(claims)
            timer.step("claim")
            won = await self._still_in_trash(won)
            timer.step("check")
            if won:
                handed += await self.complete(won, timer)
                purged += [c["_id"] for c in won]
        if reason != "expired":
            # a client asked: its next look at history, list-files, the changes feed or the
            # storage page must not show what went, so files applies the purge before we answer
            # (read-your-writes, osmcloud_common.handover); expiry has no client waiting
            await self.publisher.hand_over("files", handed)
        return purged

    async def _still_in_trash(self, claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Claims whose item is gone came after another purge (or a restore) had finished:
        that one removed the item before releasing its claim. Drop them."""
        present = await self.store.existing([c["_id"] for c in claims])
        await self.store.release_many([c["_id"] for c in claims if c["_id"] not in present])
        return [c for c in claims if c["_id"] in present]

    async def complete(self, claims: list[dict[str, Any]], timer: StepTimer | None = None) -> list[dict[str, Any]]:
        """Steps 2 and 3 for claims of one or more batches; idempotent, so a takeover may
        repeat them (a batch document that exists already keeps the events it has). Returns
        the events (outbox entries) of the batches."""
        by_batch: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for claim in claims:
            by_batch[claim["batch_id"]].append(claim)
        now, written_at = self.clock.now(), self.wall.now()
        batches = [(batch_id, own[0]["user_id"], sorted(c["_id"] for c in own),
                    [self.publisher.event(p, own[0]["user_id"]) for p in batch_payloads(own)])
                   for batch_id, own in sorted(by_batch.items())]
        timer = timer or StepTimer()
        written = await self.store.write_batches(batches, now, written_at)
        for batch_id, *_ in batches:
            self.publisher.events_written(self.store.batches, batch_id)
        timer.step("events")
        ids = sorted(c["_id"] for c in claims)
        await self.store.remove_items(ids)
        timer.step("items")
        await self.store.release_many(ids)
        timer.step("release")
        for batch_id, own in by_batch.items():
            if batch_id in written:
                for claim in own:
                    if self.purged is not None:
                        self.purged.labels(claim["reason"]).inc()
                    if claim["reason"] == "expired" and self.lag is not None:
                        self.lag.observe(purge_lag_seconds(claim, now))
        log.info("trash items purged", batches=len(batches), count=len(ids), reason=claims[0]["reason"],
                 took_over=len(written) < len(batches), seconds=timer.seconds)
        return [entry for *_, entries in batches for entry in entries]

    async def empty(self, user_id: str) -> dict[str, int]:
        # marked first: an item deleted before now that reaches the trash only later (its
        # hand-over failed while trash was away, Kafka brings it) is purged on arrival
        await self.store.mark_emptied(user_id, self.clock.now())
        items = await self.store.of_user(user_id)
        purged = await self.purge(items, "emptied")
        batch_id = f"emptied-{uuid.uuid4().hex}"
        emptied = self.publisher.event(emptied_payload(len(purged)), user_id)
        await self.store.write_batches([(batch_id, user_id, [], [emptied])], self.clock.now(), self.wall.now())
        self.publisher.events_written(self.store.batches, batch_id)
        return {"purged": len(purged), "skipped": len(items) - len(purged)}

    # ------------------------------------------------------------ the periodic job
    async def take_over_stale_claims(self) -> int:
        """Completes purges and releases restores left behind by a replica that died."""
        stale = await self.store.stale_claims(self.wall.now() - timedelta(seconds=self.settings.claim_lease_seconds))
        batches: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for claim in stale:
            if claim.get("action") == "purge":
                batches[claim["batch_id"]].append(claim)
            else:
                await self.store.release(claim["_id"], claim.get("action", "restore"))
        claims = await self._still_in_trash([c for own in batches.values() for c in own])  # gone: finished
        if claims:
            await self.complete(claims)
        return len(stale)

    async def run_once(self) -> int:
        """One pass: take over stale claims, then purge every due item, a batch at a time."""
        await self.take_over_stale_claims()
        total = 0
        while True:
            due = await self.store.due(self.clock.now(), self.settings.purge_batch_size)
            if not due:
                break
            purged = await self.purge(due, "expired")
            total += len(purged)
            if not purged:
                break  # what is left is claimed by others (a restore, another replica): next round
        lease = timedelta(seconds=2 * self.settings.claim_lease_seconds)
        await self.store.forget_relayed_batches(self.wall.now() - lease)
        await self._refresh_items_gauge()
        if self.last_pass is not None:
            self.last_pass.set(self.wall.now().timestamp())
        return total

    async def _refresh_items_gauge(self) -> None:
        """The items-in-trash gauge, at most every ITEMS_GAUGE_SECONDS: MongoDB answers the
        count from metadata, but FerretDB decodes every item for it (0.4 s of CPU at 100,000
        items), which once a second would cost more than all the purging."""
        if self.in_trash is None:
            return
        now = asyncio.get_running_loop().time()
        if self._counted_at is not None and now - self._counted_at < self.settings.items_gauge_seconds:
            return
        self.in_trash.set(await self.store.count())
        self._counted_at = now

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Mongo away: try again next round
                log.warning("purge round failed; will retry", error=repr(exc))
            await asyncio.sleep(self.settings.purge_interval_seconds)
