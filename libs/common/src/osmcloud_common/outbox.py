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

from pymongo import UpdateOne

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

# the write that clears a published outbox (its filter: the document's _id and the outbox as published)
_CLEAR = {"$unset": {OUTBOX_FIELD: "", PENDING_FIELD: ""}}

# A round clears its documents' outboxes with one update command of many statements (a command
# costs FerretDB ~1 ms of CPU, a statement in a shared one ~0.45 ms; measured with the _id + outbox
# filter at 2,000 and 20,000 documents: the _id index answers each statement). At most this many
# statements a command and one command at a time per relay: FerretDB 1.24 keeps each matched
# statement's read open until the whole command ends (msg_update.go defers every statement's
# iterator close), from a pool of 100 SQLite connections — one update of 200 matched statements
# waited for a connection forever, holding the collection's write lock. 16 leave room for six
# relays' commands at once.
CLEAR_BATCH = 16


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
        """Flushes the documents named since the last round: their events are published side
        by side, then their outboxes cleared together."""
        self._wake.clear()
        self._taken, self._hints = self._hints, {}
        # the round's documents side by side: their sends reach Kafka together, one produce
        # request for many (a request costs the broker ~1.9 ms of CPU, a message in a shared
        # one ~0.2 ms); each document's events keep their order
        held = [h for h in await asyncio.gather(*(self._publish_named(collection, docs, doc_id)
                                                  for collection, docs in self._taken.values()
                                                  for doc_id in list(docs)))
                if h is not None]
        try:
            # a scan that listed a document the round held saw the events the round published:
            # where the round's clear matched the outbox as published, it has nothing to add
            self._again.difference_update((id(c), doc_id) for c, doc_id in await self._clear_round(held))
            await asyncio.gather(*(self._flush_again(collection, doc_id) for collection, doc_id, _ in held))
        finally:
            for collection, doc_id, _ in held:
                self._release((id(collection), doc_id))

    async def _publish_named(self, collection: Collection, docs: dict[Any, list[dict[str, Any]] | None],
                             doc_id: Any) -> tuple[Collection, Any, list[dict[str, Any]] | None] | None:
        """Publishes a named document's events and keeps the document in flight for the round's
        clear: returns (collection, id, the entries published, None if nothing was pending), or
        None when the document is not this round's to clear (covered, being flushed by the scan,
        or its publish failed: the scan retries it)."""
        async with self._round_slots:
            outbox = docs.get(doc_id)
            if outbox is _COVERED:
                return None
            key = (id(collection), doc_id)
            if key in self._in_flight:  # the scan is publishing it: it looks again after
                self._again.add(key)
                return None
            self._in_flight.add(key)
            try:
                return collection, doc_id, await self._publish(collection, doc_id, outbox)
            except asyncio.CancelledError:
                self._release(key)
                raise
            except Exception as exc:  # Kafka or Mongo away: the scan retries it
                self._release(key)
                self._retry_later(exc)
                return None

    async def _clear_round(self, held: list[tuple[Collection, Any, list[dict[str, Any]] | None]]
                           ) -> list[tuple[Collection, Any]]:
        """Clears the published outboxes of a round, CLEAR_BATCH documents a command, one
        collection after another; returns the documents whose outbox was exactly what was
        published (now empty). A command that fails leaves its documents pending: the scan
        publishes them again (at least once)."""
        emptied: list[tuple[Collection, Any]] = []
        published: dict[int, tuple[Collection, list[tuple[Any, list[dict[str, Any]]]]]] = {}
        for collection, doc_id, entries in held:
            if entries is not None:
                published.setdefault(id(collection), (collection, []))[1].append((doc_id, entries))
        for collection, cleared in published.values():
            for start in range(0, len(cleared), CLEAR_BATCH):
                part = cleared[start:start + CLEAR_BATCH]
                try:
                    emptied += [(collection, doc_id) for doc_id in await self._clear(collection, part)]
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Mongo away: the scan retries them
                    self._retry_later(exc)
                    continue
                for doc_id, entries in part:
                    self._published(collection, doc_id, entries)
        return emptied

    async def _flush_again(self, collection: Collection, doc_id: Any) -> None:
        """A document the scan was asked to flush while the round held it: flushed now."""
        try:
            await self._flush_while_asked_again(collection, doc_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Kafka or Mongo away: the scan retries it
            self._retry_later(exc)

    async def _flush_while_asked_again(self, collection: Collection, doc_id: Any) -> int:
        """Flushes an in-flight document again for as long as the other loop asked for it
        meanwhile (events written since its outbox was taken); returns the events published."""
        key = (id(collection), doc_id)
        sent = 0
        while key in self._again:
            self._again.discard(key)
            sent += await self._flush_doc_now(collection, doc_id)
        return sent

    def _retry_later(self, exc: Exception) -> None:
        """Kafka or Mongo was away: what could not be published or cleared is left pending, for the scan."""
        log.warning("outbox relay failed; will retry", error=repr(exc))
        self._scan_wake.set()

    def _release(self, key: tuple[int, Any]) -> None:
        self._in_flight.discard(key)
        self._again.discard(key)

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
            return sent + await self._flush_while_asked_again(collection, doc_id)
        finally:
            self._release(key)

    async def _flush_doc_now(self, collection: Collection, doc_id: Any,
                             outbox: list[dict[str, Any]] | None = None) -> int:
        entries = await self._publish(collection, doc_id, outbox)
        if entries is None:
            return 0
        await self._clear(collection, [(doc_id, entries)])
        return self._published(collection, doc_id, entries)

    async def _publish(self, collection: Collection, doc_id: Any,
                       outbox: list[dict[str, Any]] | None = None) -> list[dict[str, Any]] | None:
        """Publishes the document's pending events (`outbox`, or else read); returns them, or
        None when nothing was pending."""
        if outbox is not None:  # as the writer's write left it: no read
            entries = outbox
        else:
            self._cover(collection, doc_id)
            # by _id alone: FerretDB uses its _id index only for exactly that filter (any other
            # condition scans the collection, which cost files' relay 100+ ms at p99)
            doc = await collection.find_one({"_id": doc_id}, {OUTBOX_FIELD: 1, PENDING_FIELD: 1})
            if doc is None or not doc.get(PENDING_FIELD):
                self._pending_since.get(self._name(collection), {}).pop(doc_id, None)
                return None
            entries = doc.get(OUTBOX_FIELD) or []
        # all in flight at once: a purge batch carries thousands of events
        await self._producer.publish_many([
            (entry["topic"], entry["key"], entry["value"], _headers(entry))
            for entry in entries])
        return entries

    async def _clear(self, collection: Collection, published: list[tuple[Any, list[dict[str, Any]]]]) -> list[Any]:
        """Removes published events from their documents (document id, entries published), in
        one write: usually nothing was added meanwhile, and each statement clears its outbox and
        flag. Its condition is the outbox as published, so an event added meanwhile stays.
        Returns the ids of the documents that statement cleared."""
        if len(published) == 1:
            doc_id, entries = published[0]
            done = await collection.update_one({"_id": doc_id, OUTBOX_FIELD: entries}, _CLEAR)
            if done.modified_count == 1:
                return [doc_id]
            await self._clear_leftover(collection, doc_id, entries)
            return []
        done = await collection.bulk_write([UpdateOne({"_id": doc_id, OUTBOX_FIELD: entries}, _CLEAR)
                                            for doc_id, entries in published], ordered=False)
        if done.modified_count == len(published):
            return [doc_id for doc_id, _ in published]
        # the reply counts, it does not say which statement matched nothing: those documents are
        # still flagged (one the statement cleared and a new event flagged again is too, and
        # its leftover clear changes nothing)
        still = {doc["_id"] async for doc in collection.find(
            {"_id": {"$in": [doc_id for doc_id, _ in published]}, PENDING_FIELD: True}, {"_id": 1})}
        for doc_id, entries in published:
            if doc_id in still:
                await self._clear_leftover(collection, doc_id, entries)
        return [doc_id for doc_id, _ in published if doc_id not in still]

    @staticmethod
    async def _clear_leftover(collection: Collection, doc_id: Any, entries: list[dict[str, Any]]) -> None:
        """An outbox that changed after it was published: only the published events go."""
        if entries:
            await collection.update_one({"_id": doc_id}, {"$pullAll": {OUTBOX_FIELD: entries}})
        # clear the flag only if no new event was pushed meanwhile
        await collection.update_one({"_id": doc_id, OUTBOX_FIELD: {"$size": 0}}, {"$unset": {PENDING_FIELD: ""}})

    def _published(self, collection: Collection, doc_id: Any, entries: list[dict[str, Any]]) -> int:
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
