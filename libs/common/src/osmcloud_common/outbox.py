"""The transactional outbox, without multi-document transactions.

The MongoDB-protocol server of the local stack has no transactions, so an event is written
*inside the very document whose change causes it*: one single-document write records both
the change and the pending event. A relay publishes pending events to Kafka, retrying until
Kafka acknowledges, then removes them from the document. A crash between publish and
removal publishes again: delivery is at least once and consumers are idempotent."""

import asyncio
import json
from typing import Any

from .events import Event, topic_for, CATALOGUE
from .logging import current_request_id, get_logger

OUTBOX_FIELD = "_outbox"
PENDING_FIELD = "_outbox_pending"

log = get_logger(__name__)


def outbox_entry(event: Event, topic_prefix: str) -> dict[str, Any]:
    """A pending event as stored: plain strings only, so it can be removed by equality
    ($pullAll; FerretDB does not match documents inside $pull conditions)."""
    domain = CATALOGUE[event.type].domain
    return {
        "id": event.id,
        "topic": topic_for(domain, topic_prefix),
        "key": event.user_id,
        "value": event.to_json(),
        "request_id": current_request_id() or "",
    }


def with_events(update: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Adds pending events to an update document (same write as the change)."""
    merged = {op: dict(fields) for op, fields in update.items()}
    merged.setdefault("$push", {})[OUTBOX_FIELD] = {"$each": entries}
    merged.setdefault("$set", {})[PENDING_FIELD] = True
    return merged


def new_document_with_events(doc: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Adds pending events to a document about to be inserted."""
    return {**doc, OUTBOX_FIELD: list(entries), PENDING_FIELD: True}


class OutboxRelay:
    """Publishes pending events of some collections; woken right after each write, and
    polling as well for what an outage or a crash left behind."""

    def __init__(self, producer, collections, poll_seconds: float = 1.0) -> None:
        self._producer = producer
        self._collections = list(collections)
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self.published = 0

    def add_collection(self, collection) -> None:
        self._collections.append(collection)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        backoff = self._poll_seconds
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
                backoff = self._poll_seconds
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka or Mongo away: retry, slower each time
                log.warning("outbox relay failed; will retry", error=repr(exc), retry_in=backoff)
                backoff = min(backoff * 2, 10.0)

    async def flush(self) -> int:
        """Publishes every pending event once; returns how many were published."""
        sent = 0
        for collection in self._collections:
            async for doc in collection.find({PENDING_FIELD: True}, {OUTBOX_FIELD: 1}):
                entries = doc.get(OUTBOX_FIELD) or []
                for entry in entries:
                    await self._producer.publish(
                        entry["topic"], entry["key"], entry["value"],
                        headers={"event_id": entry["id"], "request_id": entry.get("request_id", "")},
                    )
                    sent += 1
                if entries:
                    await collection.update_one({"_id": doc["_id"]}, {"$pullAll": {OUTBOX_FIELD: entries}})
                # clear the flag only if no new event was pushed meanwhile
                await collection.update_one(
                    {"_id": doc["_id"], OUTBOX_FIELD: {"$size": 0}}, {"$unset": {PENDING_FIELD: ""}}
                )
        self.published += sent
        return sent


def decode_value(entry: dict[str, Any]) -> Event:
    return Event.model_validate(json.loads(entry["value"]))
