"""The transactional outbox, without multi-document transactions.

The MongoDB-protocol server of the local stack has no transactions, so an event is written
*inside the very document whose change causes it*: one single-document write records both
the change and the pending event. A relay publishes pending events to Kafka, retrying until
Kafka acknowledges, then removes them from the document. A crash between publish and
removal publishes again: delivery is at least once and consumers are idempotent."""

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Any, Protocol

from . import tracing
from .events import CATALOGUE, Event, topic_for
from .logging import current_request_id, get_logger
from .mongo import Collection

OUTBOX_FIELD = "_outbox"
PENDING_FIELD = "_outbox_pending"

log = get_logger(__name__)

# a named document's outbox that a read of the document made after the wake-up covered
# already (the scan flushed it): nothing is left to publish for that wake-up
_COVERED: list[dict[str, Any]] = []


def outbox_entry(event: Event, topic_prefix: str) -> dict[str, Any]:
    """A pending event as stored: plain strings only, so it can be removed by equality
    ($pullAll; FerretDB does not match documents inside $pull conditions)."""
    domain = CATALOGUE[event.type].domain
    entry = {
        "id": event.id,
        "topic": topic_for(domain, topic_prefix),
        "key": event.user_id,
        "value": event.to_json(),
        "request_id": current_request_id() or "",
    }
    traceparent = tracing.current_traceparent()  # traces on: the relay's publish continues this trace
    if traceparent:
        entry["traceparent"] = traceparent
    return entry


def with_events(update: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Adds pending events to an update document (same write as the change)."""
    merged = {op: dict(fields) for op, fields in update.items()}
    merged.setdefault("$push", {})[OUTBOX_FIELD] = {"$each": entries}
    merged.setdefault("$set", {})[PENDING_FIELD] = True
    return merged


def new_document_with_events(doc: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Adds pending events to a document about to be inserted."""
    return {**doc, OUTBOX_FIELD: list(entries), PENDING_FIELD: True}


class Producer(Protocol):
    """What the relay publishes through (kafka.KafkaProducer)."""

    async def publish_many(self, messages: list[tuple[str, str, str, dict[str, str]]]) -> None: ...


class OutboxRelay:
    """Publishes pending events of some collections; woken right after each write, and
    polling as well for what an outage or a crash left behind.

    A wake-up that names the written document (`wake(collection, doc_id)`) flushes just that
    document by _id; a bare `wake()` and the periodic poll scan every collection. Scans are
    costly where the MongoDB-protocol server cannot use an index (FerretDB on SQLite), so
    writers should name their documents. A writer whose write returned the document's outbox
    as written (an insert's entries, or an update that returned the document after it) passes
    it along (`wake(collection, doc_id, outbox)`): the relay then publishes those entries
    without reading the document first — the same entries, in the same order, it would have
    read; what was added since is caught by the clearing write's condition, as after a read."""

    def __init__(self, producer: Producer, collections: Iterable[Collection], poll_seconds: float = 1.0) -> None:
        self._producer = producer
        self._collections = list(collections)
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._scan_wake = asyncio.Event()
        self._in_flight: set[tuple[int, Any]] = set()
        self._round_slots = asyncio.Semaphore(64)  # named documents flushed at once
        self._again: set[tuple[int, Any]] = set()
        # per collection: the named documents, each with its outbox as written (None: unknown, read it)
        self._hints: dict[int, tuple[Collection, dict[Any, list[dict[str, Any]] | None]]] = {}
        self._taken: dict[int, tuple[Collection, dict[Any, list[dict[str, Any]] | None]]] = {}  # being flushed
        self.published = 0
        # the backlog as the scans see it: per collection, the pending documents and when a
        # scan first found each pending (wall time); a publish removes its document
        self._pending_since: dict[str, dict[Any, float]] = {}

    def backlog(self) -> dict[str, tuple[int, float]]:
        """Per collection: (documents with unpublished events, seconds the oldest of them has
        been waiting, as seen by the scans — at most one scan late)."""
        now = time.time()
        return {name: (len(since), now - min(since.values()) if since else 0.0)
                for name, since in self._pending_since.items()}

    @staticmethod
    def _name(collection: Collection) -> str:
        return str(getattr(collection, "name", "") or "")

    def add_collection(self, collection: Collection) -> None:
        self._collections.append(collection)

    def wake(self, collection: Collection | None = None, doc_id: Any = None,
             outbox: list[dict[str, Any]] | None = None) -> None:
        if collection is not None and doc_id is not None:
            docs = self._hints.setdefault(id(collection), (collection, {}))[1]
            # named twice before a flush: the first outbox is out of date, so the document is read
            docs[doc_id] = None if doc_id in docs else outbox
            self._wake.set()
        else:
            self._scan_wake.set()

    async def run(self) -> None:
        """Two loops: named documents are flushed as soon as they are written; the scan for
        leftovers runs beside it, so a slow scan never delays a fresh event."""
        await self._index_pending()
        await asyncio.gather(self._run_hinted(), self._run_scans())

    async def _index_pending(self) -> None:
        """The scan asks for documents flagged pending: a sparse index on the flag makes that
        a lookup of the few pending ones, not a read of every document (FerretDB ignores
        `sparse` and indexes all, which answers the same question)."""
        for collection in self._collections:
            try:
                await collection.create_index(PENDING_FIELD, sparse=True)
            except Exception as exc:  # Mongo away: the scans work without it, only slower
                log.warning("could not index the outbox flag", collection=getattr(collection, "name", None),
                            error=repr(exc))

    async def _run_hinted(self) -> None:
        while True:
            await self._wake.wait()
            await self._flush_round()

    async def _flush_round(self) -> None:
        """Flushes the documents named since the last round."""
        self._wake.clear()
        self._taken, self._hints = self._hints, {}
        # the round's documents side by side: their sends reach Kafka together, one produce
        # request for many (a request costs the broker ~1.9 ms of CPU, a message in a shared
        # one ~0.2 ms); each document's events keep their order
        await asyncio.gather(*(self._flush_named(collection, docs, doc_id)
                               for collection, docs in self._taken.values() for doc_id in list(docs)))

    async def _flush_named(self, collection: Collection, docs: dict[Any, list[dict[str, Any]] | None],
                           doc_id: Any) -> None:
        async with self._round_slots:
            outbox = docs.get(doc_id)
            if outbox is _COVERED:
                return
            try:
                await self._flush_doc(collection, doc_id, outbox)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka or Mongo away: the scan retries it
                log.warning("outbox relay failed; will retry", error=repr(exc))
                self._scan_wake.set()

    async def _run_scans(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = self._poll_seconds
        wait = 0.0  # scan at start: what a crash left behind
        while True:
            try:
                await asyncio.wait_for(self._scan_wake.wait(), timeout=wait)
            except TimeoutError:
                pass
            self._scan_wake.clear()
            started = loop.time()
            try:
                await self.flush()
                backoff = self._poll_seconds
                # a scan reads every outbox document where the server has no usable index
                # (FerretDB): never spend more than a tenth of the time scanning
                wait = max(self._poll_seconds, 9 * (loop.time() - started))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka or Mongo away: retry, slower each time
                log.warning("outbox relay failed; will retry", error=repr(exc), retry_in=backoff)
                wait, backoff = backoff, min(backoff * 2, 10.0)

    async def flush(self) -> int:
        """Publishes every pending event once; returns how many were published. Every
        collection is listed before anything is published, so the backlog figures hold while
        Kafka is away."""
        listed = []
        for collection in self._collections:
            # collect the ids first: no cursor stays open while events are published
            pending = [doc["_id"] async for doc in collection.find({PENDING_FIELD: True}, {"_id": 1})]
            seen = self._pending_since.get(self._name(collection), {})
            now = time.time()
            self._pending_since[self._name(collection)] = {doc_id: seen.get(doc_id, now) for doc_id in pending}
            listed.append((collection, pending))
        sent = 0
        for collection, pending in listed:
            for doc_id in pending:
                sent += await self._flush_doc(collection, doc_id)
        return sent

    async def _flush_doc(self, collection: Collection, doc_id: Any,
                         outbox: list[dict[str, Any]] | None = None) -> int:
        key = (id(collection), doc_id)
        if key in self._in_flight:  # the other loop is publishing it: it looks again after
            self._again.add(key)
            return 0
        self._in_flight.add(key)
        try:
            sent = await self._flush_doc_now(collection, doc_id, outbox)
            while key in self._again:  # events written meanwhile
                self._again.discard(key)
                sent += await self._flush_doc_now(collection, doc_id)
            return sent
        finally:
            self._in_flight.discard(key)
            self._again.discard(key)

    async def _flush_doc_now(self, collection: Collection, doc_id: Any,
                             outbox: list[dict[str, Any]] | None = None) -> int:
        if outbox is not None:  # as the writer's write left it: no read
            entries = outbox
        else:
            self._cover(collection, doc_id)
            # by _id alone: FerretDB uses its _id index only for exactly that filter (any other
            # condition scans the collection, which cost files' relay 100+ ms at p99)
            doc = await collection.find_one({"_id": doc_id}, {OUTBOX_FIELD: 1, PENDING_FIELD: 1})
            if doc is None or not doc.get(PENDING_FIELD):
                self._pending_since.get(self._name(collection), {}).pop(doc_id, None)
                return 0
            entries = doc.get(OUTBOX_FIELD) or []
        # all in flight at once: a purge batch carries thousands of events
        await self._producer.publish_many([
            (entry["topic"], entry["key"], entry["value"], _headers(entry))
            for entry in entries])
        # usually nothing was added meanwhile: one write clears the outbox and the flag
        done = await collection.update_one({"_id": doc_id, OUTBOX_FIELD: entries},
                                           {"$unset": {OUTBOX_FIELD: "", PENDING_FIELD: ""}})
        if done.modified_count != 1:
            if entries:
                await collection.update_one({"_id": doc_id}, {"$pullAll": {OUTBOX_FIELD: entries}})
            # clear the flag only if no new event was pushed meanwhile
            await collection.update_one({"_id": doc_id, OUTBOX_FIELD: {"$size": 0}}, {"$unset": {PENDING_FIELD: ""}})
        self.published += len(entries)
        self._pending_since.get(self._name(collection), {}).pop(doc_id, None)
        return len(entries)


    def _cover(self, collection: Collection, doc_id: Any) -> None:
        """The document is about to be read: the outboxes of its earlier wake-ups are in what
        the read finds, so those wake-ups publish nothing again (a scan that got there first
        would otherwise have them published twice)."""
        for hints in (self._hints, self._taken):
            named = hints.get(id(collection))
            if named is not None and doc_id in named[1]:
                named[1][doc_id] = _COVERED


def _headers(entry: dict[str, Any]) -> dict[str, str]:
    """A pending event's Kafka headers: its id, the request that recorded it and, when that
    request was traced, its trace context (the producer sends its own span's in its place)."""
    headers = {"event_id": entry["id"], "request_id": entry.get("request_id", "")}
    if entry.get("traceparent"):
        headers["traceparent"] = entry["traceparent"]
    return headers


def decode_value(entry: dict[str, Any]) -> Event:
    return Event.model_validate(json.loads(entry["value"]))
