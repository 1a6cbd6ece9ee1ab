"""Read-your-writes between services (docs/adr/0004-read-your-writes.md).

A write whose effect a client reads next from another service's projection hands the
events it has just recorded straight to that service, before answering: `POST
/internal/events` with the events' JSON. The receiver applies them with the very handlers
its Kafka consumer runs (idempotent; single handlers also record the event id as
processed), so when Kafka delivers the same events later nothing changes. Events still
drive everything: the outbox relay publishes every one of them as before, and every other
consumer learns of them only from Kafka. With traces on, the hand-over is a call within the
write's trace (its `traceparent` goes along) and each event applied is a span in it.

A connection lost without an answer is tried once more (applying is idempotent). A
hand-over that fails (the reader is down, slow or refuses) is logged and counted; the
write has happened and still answers success, and the reader catches up from Kafka. While a
reader is down its own pages fail too, so a client sees no contradiction; a reader that
answers too slowly for the hand-over's timeout is the one case where the lag can show."""

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from pydantic import ValidationError
from pymongo.errors import BulkWriteError

from . import tracing
from .errors import BadRequest
from .events import Event
from .logging import get_logger
from .mongo import Collection
from .service_client import ServiceClient

log = get_logger(__name__)

# per hand-over request (an "empty trash" of thousands of items is split): ~0.6 MB at most,
# under the 1 MiB body limit of every service (http.create_app)
MAX_EVENTS = 1000

Handler = Callable[[Event], Awaitable[None]]
BatchHandler = Callable[[list[Event]], Awaitable[None]]


class Handover(ServiceClient):
    """The sending side: one other service's /internal/events."""

    def __init__(self, target: str, base_url: str, gateway_secret: str, timeout_seconds: float) -> None:
        super().__init__(base_url, gateway_secret, timeout_seconds)
        self.target = target
        self.failed = 0

    async def deliver(self, entries: list[dict[str, Any]]) -> bool:
        """Hands over outbox entries (as Runtime.event made them); True once the receiver
        has applied them all."""
        values = [json.loads(e["value"]) for e in entries]
        for start in range(0, len(values), MAX_EVENTS):
            part = values[start:start + MAX_EVENTS]
            try:
                try:
                    await self._post(part)
                except aiohttp.ClientConnectionError as exc:
                    if isinstance(exc, TimeoutError):
                        raise  # a slow receiver: waiting twice as long would only delay the answer
                    # a pooled connection the receiver had closed, or a replica that went away:
                    # applying is idempotent, so one more try (on a new connection) is safe
                    log.info("hand-over connection lost; trying once more", target=self.target, error=repr(exc))
                    await self._post(part)
            except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
                self.failed += 1
                log.warning("hand-over failed; the reader catches up from Kafka", target=self.target,
                            events=len(part), error=repr(exc))
                return False
        return True

    async def _post(self, events: list[dict[str, Any]]) -> None:
        async with self.session().post(f"{self.base_url}/internal/events", json={"events": events},
                                       headers=self.headers()) as reply:
            if reply.status != 200:
                raise RuntimeError(f"{self.target} answered {reply.status}: {(await reply.text())[:300]}")


async def processed_among(processed: Collection, events: list[Event]) -> set[str]:
    """Which of these events were applied already (one query for them all)."""
    if not events:
        return set()
    found = await processed.find({"_id": {"$in": [e.id for e in events]}}, {"_id": 1}).to_list(None)
    return {doc["_id"] for doc in found}


async def record_processed(processed: Collection, events: list[Event]) -> None:
    """Remembers a batch of applied events in one insert (those known already are skipped)."""
    if not events:
        return
    try:
        await processed.insert_many([{"_id": e.id, "type": e.type, "at": datetime.now(UTC)} for e in events],
                                    ordered=False)
    except BulkWriteError:
        pass  # some were recorded already: by a Kafka delivery or an earlier hand-over


class BatchLocks:
    """One lock per batch-handled event type in a process. The Kafka consumer and a hand-over
    (or a replayed dead letter) apply a batch of one type only while holding its lock, so two
    deliveries of the same events never run side by side: a batch handler is idempotent as a
    whole when applied twice in turn, not when two runs interleave (two purges of one file
    read each other's half-removed versions and recorded two prune events)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def __call__(self, event_type: str) -> asyncio.Lock:
        return self._locks.setdefault(event_type, asyncio.Lock())


def parse_events(body: object) -> list[Event]:
    """The body of a hand-over: {"events": [event envelope, ...]}; 400 for anything else."""
    raw = body.get("events") if isinstance(body, dict) else None
    if not isinstance(raw, list) or len(raw) > MAX_EVENTS:
        raise BadRequest(f"the body must be {{\"events\": [...]}} with at most {MAX_EVENTS} events")
    try:
        return [Event.model_validate(e) for e in raw]
    except ValidationError as exc:
        raise BadRequest(f"not an event envelope: {exc.errors()[0]['msg']}") from None


async def apply_events(events: list[Event], *, handlers: dict[str, Handler], batch_handlers: dict[str, BatchHandler],
                       processed: Collection, skip: Callable[[Event], Awaitable[bool]],
                       batch_locks: BatchLocks | None = None) -> int:
    """Applies handed-over events in their order, as the Kafka consumer would: events of
    deleted accounts skipped, single handlers only for ids not yet processed (and the id
    recorded after the effect), runs of one batch-handled type together — their ids recorded
    too, so that the Kafka delivery, which comes later, skips them rather than applying them
    again after newer events (an upload's "take it out of the trash" after the delete marker
    that came back). `batch_locks`: the process's (the consumer holds the same). Returns how
    many were applied; a handler's exception propagates (the sender falls back to Kafka)."""
    applied = 0
    run: list[Event] = []

    async def flush() -> None:
        nonlocal applied
        if run:
            async with batch_locks(run[0].type) if batch_locks else contextlib.nullcontext():
                seen = await processed_among(processed, run)
                fresh = [e for e in run if e.id not in seen]
                if fresh:
                    attributes = {"osmcloud.event_type": run[0].type, "messaging.batch.message_count": len(fresh)}
                    with tracing.span(f"apply {run[0].type} batch", attributes=attributes):
                        await batch_handlers[run[0].type](fresh)
                        await record_processed(processed, fresh)
            applied += len(fresh)
            run.clear()

    for event in events:
        if event.type not in handlers and event.type not in batch_handlers:
            continue
        if await skip(event):
            continue
        if event.type in batch_handlers:
            if run and run[0].type != event.type:
                await flush()
            run.append(event)
            continue
        await flush()
        if await processed.find_one({"_id": event.id}, {"_id": 1}):
            continue
        with tracing.span(f"apply {event.type}", attributes={"osmcloud.event_type": event.type,
                                                             "messaging.message.id": event.id}):
            await handlers[event.type](event)
        await processed.update_one({"_id": event.id}, {"$setOnInsert": {"type": event.type, "at": datetime.now(UTC)}},
                                   upsert=True)
        applied += 1
    await flush()
    return applied
