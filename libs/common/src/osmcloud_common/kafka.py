"""Kafka at the edges: a producer that survives broker outages, topic set-up, and an
idempotent consumer (effect first, then remember the event id, then commit the offset)."""

import asyncio
import functools
import json
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.structs import ConsumerRecord, TopicPartition
from opentelemetry import context as otel_context
from pydantic import ValidationError

from . import tracing
from .events import CATALOGUE, DOMAINS, AccountDeleted, Event, topic_for
from .handover import BatchLocks, processed_among
from .logging import get_logger
from .mongo import Database

log = get_logger(__name__)

Handler = Callable[[Event], Awaitable[None]]
# Applies many events of one type at once (in their order); must be idempotent as a whole:
# a redelivered batch, or a batch made partly of events applied before, changes nothing more.
BatchHandler = Callable[[list[Event]], Awaitable[None]]


class KafkaProducer:
    """Connects lazily and reconnects after failures; publish raises while Kafka is away
    so that the outbox keeps the event and retries."""

    def __init__(self, bootstrap: str, client_id: str, publish_timeout: float = 30.0) -> None:
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        # a send whose acknowledgement never comes (seen after Kafka was SIGKILLed and came
        # back: the outbox relay waited for ever and published nothing more, issue 21) fails
        # after this long, so the relay starts afresh with a new producer and retries
        self._publish_timeout = publish_timeout

    async def _connected(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._bootstrap,
                    client_id=self._client_id,
                    acks="all",
                    enable_idempotence=True,
                    request_timeout_ms=10_000,
                    linger_ms=0,
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def publish(self, topic: str, key: str, value: str, headers: dict[str, str] | None = None) -> None:
        await self.publish_many([(topic, key, value, headers or {})])

    async def publish_many(self, messages: list[tuple[str, str, str, dict[str, str]]]) -> None:
        """Publishes (topic, key, value, headers) messages, all in flight at once, and returns
        when Kafka has acknowledged every one (raises if any failed; the caller retries them
        all: at least once). One user's messages share a partition and keep their order: the
        idempotent producer never reorders a partition's batches."""
        producer = await self._connected()
        spans = tracing.ProducerSpans()  # with traces on: a span per message, its context in the headers

        async def send_all() -> None:
            futures = [await producer.send(topic, value=value.encode(), key=key.encode(),
                                           headers=[(k, v.encode()) for k, v in
                                                    spans.headers(topic, key, headers).items()])
                       for topic, key, value, headers in messages]
            await asyncio.gather(*futures)
        try:
            await asyncio.wait_for(send_all(), timeout=self._publish_timeout)
        except BaseException as exc:
            spans.end(exc)
            if isinstance(exc, (KafkaError, asyncio.TimeoutError)):
                await self.close()  # start afresh next time
            raise
        spans.end()

    async def close(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            try:  # stop() flushes what is pending: bounded, as the sends are
                await asyncio.wait_for(producer.stop(), timeout=self._publish_timeout)
            except Exception:
                pass


async def ensure_topics(bootstrap: str, prefix: str, partitions: int = 4, domains: Iterable[str] = DOMAINS,
                        replication_factor: int = 1) -> None:
    """Creates the topics that are missing. Existing topics are left as they are (adding
    partitions would send a user's next events to another partition than the earlier ones,
    breaking their order); one with fewer partitions than asked is logged, since a consumer
    group then leaves replicas beyond its partition count idle."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        wanted = [topic_for(d, prefix) for d in domains]
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            try:
                await admin.create_topics([NewTopic(t, partitions, replication_factor) for t in missing])
            except TopicAlreadyExistsError:
                pass
        present = [t for t in wanted if t in existing]
        if present:
            await _warn_about_few_partitions(admin, present, partitions)
    finally:
        await admin.close()


async def _warn_about_few_partitions(admin: AIOKafkaAdminClient, topics: list[str], partitions: int) -> None:
    try:
        described = await admin.describe_topics(topics)
    except KafkaError as exc:
        log.warning("could not describe topics", error=repr(exc))
        return
    for topic in described:
        have = len(topic.get("partitions") or ())
        if 0 < have < partitions:
            log.warning("topic has fewer partitions than configured; replicas beyond that count stay idle "
                        "(raise them with kafka-topics.sh --alter once its consumers have caught up)",
                        topic=topic.get("topic"), partitions=have, configured=partitions)


async def kafka_reachable(bootstrap: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await asyncio.wait_for(admin.start(), timeout=3)
        await asyncio.wait_for(admin.list_topics(), timeout=3)
        return True
    except Exception:
        return False
    finally:
        try:
            await admin.close()
        except Exception:
            pass


async def _false() -> bool:
    return False


def _user_id_of(raw: str) -> str | None:
    """The user an unreadable event names, if its JSON says (so erasing the account erases
    the dead letter too)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    user_id = value.get("user_id") if isinstance(value, dict) else None
    return user_id if isinstance(user_id, str) else None


class EventConsumer:
    """Runs handlers for the event types a service reacts to.

    Each handler must be idempotent (at-least-once delivery); on top of that, processed
    event ids are remembered so a redelivered event is skipped. Offsets are committed only
    after the effect is stored. A handler that keeps failing is retried with backoff; an
    event that cannot be parsed is logged and set aside in `dead_letters`.

    A batch handler takes every event of its type that one poll brought (runs of them, each
    partition kept in order), for effects that cost far less done for many at once (the
    files service removing the versions and blobs of thousands of purged trash items)."""

    def __init__(self, *, bootstrap: str, topic_prefix: str, group_id: str, handlers: dict[str, Handler],
                 database: Database, max_attempts: int = 8,
                 skip: Callable[[Event], Awaitable[bool]] | None = None,
                 batch_handlers: dict[str, BatchHandler] | None = None,
                 max_records: int = 2000, fetch_max_wait_ms: int = 500, batch_locks: BatchLocks | None = None,
                 commit_seconds: float = 1.0) -> None:
        batch_handlers = dict(batch_handlers or {})
        self._batch_locks = batch_locks or BatchLocks()
        unknown = (set(handlers) | set(batch_handlers)) - set(CATALOGUE)
        if unknown:
            raise ValueError(f"handlers for unknown event types: {sorted(unknown)}")
        if set(handlers) & set(batch_handlers):
            raise ValueError(f"both a handler and a batch handler for {sorted(set(handlers) & set(batch_handlers))}")
        self._bootstrap = bootstrap
        self._group_id = group_id
        self._handlers = handlers
        self._batch_handlers = batch_handlers
        self._max_records = max_records
        self._fetch_max_wait_ms = fetch_max_wait_ms
        # offsets are committed at most this often (an offset commit costs the broker ~3.7 ms
        # of CPU, more than the events it covers); what a crash leaves uncommitted is delivered
        # again, which the handlers' idempotence absorbs
        self._commit_seconds = commit_seconds
        self._uncommitted: dict[TopicPartition, int] = {}
        self._topics = sorted({topic_for(CATALOGUE[t].domain, topic_prefix) for t in {*handlers, *batch_handlers}})
        self._processed = database["processed_events"]
        self._dead_letters = database["dead_letters"]
        self._max_attempts = max_attempts
        self._skip = skip  # e.g. events of an account already deleted here
        self.handled = 0
        self.connected = False
        # events set aside in `dead_letters`, by event type ("unreadable" when unparsable); every
        # type starts at 0, so that a first dead letter is an increase Prometheus can see
        self.dead_lettered: dict[str, int] = {t: 0 for t in (*sorted(handlers), *sorted(batch_handlers), "unreadable")}

    @property
    def group_id(self) -> str:
        return self._group_id

    def _dead_lettered(self, event_type: str) -> None:
        self.dead_lettered[event_type] = self.dead_lettered.get(event_type, 0) + 1

    async def run(self) -> None:
        while True:
            consumer = AIOKafkaConsumer(
                *self._topics,
                bootstrap_servers=self._bootstrap,
                group_id=self._group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=self._fetch_max_wait_ms,
                metadata_max_age_ms=5000,
                # room for big batches when a batch handler falls behind (default 1 MiB)
                max_partition_fetch_bytes=(8 if self._batch_handlers else 1) * 1024 * 1024,
                # a batch of thousands of purges on a slow server may take minutes between
                # polls; past this the broker would hand its partitions to another member
                max_poll_interval_ms=900_000 if self._batch_handlers else 300_000,
            )
            try:
                await consumer.start()
                self.connected = True
                await self._consume(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("consumer failed; reconnecting", group=self._group_id, error=repr(exc))
                await asyncio.sleep(1)
            finally:
                self.connected = False
                try:
                    if self._uncommitted:  # what was applied, before the consumer goes
                        await asyncio.wait_for(self._commit(consumer), timeout=5)
                except Exception:
                    pass
                self._uncommitted = {}
                try:
                    await consumer.stop()
                except Exception:
                    pass

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        loop = asyncio.get_running_loop()
        committed_at = loop.time()
        while True:
            due = committed_at + self._commit_seconds - loop.time()
            wait = max(0.0, min(1.0, due)) if self._uncommitted else 1.0
            batches = await consumer.getmany(timeout_ms=int(wait * 1000), max_records=self._max_records)
            if batches:
                if self._batch_handlers:
                    await self._handle_partitions({tp: list(m) for tp, m in batches.items()})
                else:
                    for messages in batches.values():
                        for message in messages:
                            await self._handle_message(message)
                # after every effect: a crash before the commit redelivers, never loses
                self._uncommitted.update({tp: messages[-1].offset + 1 for tp, messages in batches.items()})
            if self._uncommitted and loop.time() - committed_at >= self._commit_seconds:
                await self._commit(consumer)
                committed_at = loop.time()

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        """Commits what was applied on the partitions this consumer still has; a partition a
        rebalance gave to another member meanwhile is delivered again there (idempotent)."""
        assigned = consumer.assignment()
        offsets = {tp: offset for tp, offset in self._uncommitted.items() if tp in assigned}
        self._uncommitted = {}
        if offsets:
            await consumer.commit(offsets)

    def _batchable(self, event: Event | None) -> bool:
        return event is not None and event.type in self._batch_handlers

    async def _handle_partitions(self, fetched: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Applies the messages of several partitions, each partition in its order, handing
        runs of events that have a batch handler over together — across partitions too: those
        are other users' events, with no order between them."""
        queues = [deque((m, self._parse(m)) for m in messages) for messages in fetched.values()]
        while any(queues):
            for queue in queues:  # events without a batch handler at the head: one at a time
                while queue and not self._batchable(queue[0][1]):
                    await self._handle_message(*queue.popleft())
            heads = [queue for queue in queues if queue]
            if not heads:
                break
            head = heads[0][0][1]
            assert head is not None  # the loop above left a batchable event at every queue's head
            event_type = head.type
            run: list[Event] = []
            contexts: list[otel_context.Context | None] = []
            for queue in heads:  # every partition's leading run of that type
                while queue:
                    message, event = queue[0]
                    if event is None or event.type != event_type:
                        break
                    queue.popleft()
                    run.append(event)
                    contexts.append(tracing.message_context(message))
            with tracing.batch_span(event_type, contexts):  # linked to (or continuing) the messages' traces
                await self._apply_batch(event_type, run)

    async def _apply_batch(self, event_type: str, events: list[Event]) -> None:
        """The batch handler is idempotent as a whole, so processed ids are not recorded (a
        write per event would cost more than the batched effect); one query for the whole
        batch skips those a hand-over applied already (osmcloud_common.handover). A batch
        that keeps failing is split into single events, so one bad event is set aside alone."""
        async with self._batch_locks(event_type):  # never beside a hand-over of the same type
            await self._apply_batch_locked(event_type, events)

    async def _apply_batch_locked(self, event_type: str, events: list[Event]) -> None:
        skipped: dict[str, bool] = {}
        kept = []
        handed_over = await processed_among(self._processed, events)
        for event in events:
            if event.id in handed_over:
                continue
            if self._skip is not None and event.user_id not in skipped:
                skipped[event.user_id] = await self._skip(event)
            if not skipped.get(event.user_id):
                kept.append(event)
        if not kept:
            return
        handler = self._batch_handlers[event_type]
        with structlog.contextvars.bound_contextvars(event_type=event_type, batch=len(kept)):
            if await self._attempt(lambda: handler(kept), attempts=3):
                self.handled += len(kept)
                log.info("event batch handled")
                return
        for event in kept:
            with structlog.contextvars.bound_contextvars(event_id=event.id, event_type=event.type):
                if await self._attempt(functools.partial(handler, [event]), attempts=self._max_attempts, event=event):
                    self.handled += 1

    def _parse(self, message: ConsumerRecord) -> Event | None:
        try:
            return Event.from_json(message.value)
        except (ValidationError, ValueError):
            return None

    async def _handle_message(self, message: ConsumerRecord, event: Event | None = None) -> None:
        if event is None:
            try:
                event = Event.from_json(message.value)
            except (ValidationError, ValueError) as exc:
                log.error("unreadable event set aside", error=str(exc), offset=message.offset)
                raw = message.value.decode(errors="replace")
                await self._dead_letters.insert_one(
                    {"raw": raw, "user_id": _user_id_of(raw), "error": str(exc), "at": datetime.now(UTC)})
                self._dead_lettered("unreadable")
                return
        handler = self._handlers.get(event.type)
        if handler is None:
            return
        with tracing.consumer_span(message, event):  # continues the trace the message's headers carry
            await self._handle_event(message, event, handler)

    async def _handle_event(self, message: ConsumerRecord, event: Event, handler: Handler) -> None:
        # both reads at once: they sit between the event's arrival and its effect
        seen, skip = await asyncio.gather(self._processed.find_one({"_id": event.id}, {"_id": 1}),
                                          self._skip(event) if self._skip is not None else _false())
        if seen:
            return
        if skip:
            log.info("event skipped", event_id=event.id, event_type=event.type)
            return
        request_id = dict(message.headers or ()).get("request_id", b"").decode()
        with structlog.contextvars.bound_contextvars(event_id=event.id, event_type=event.type,
                                                    request_id=request_id or None):
            await self._apply(handler, event)

    async def _attempt(self, run: Callable[[], Awaitable[None]], *, attempts: int, event: Event | None = None
                       ) -> bool:
        """Runs `run` until it succeeds, with backoff; after `attempts` failures sets `event`
        aside (if given) and returns False."""
        delay = 0.2
        for attempt in range(1, attempts + 1):
            try:
                await run()
                return True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt == attempts:
                    if event is not None:
                        log.error("handler gave up; event set aside", error=repr(exc))
                        await self._dead_letters.insert_one(
                            {"event": event.model_dump(mode="json"), "user_id": event.user_id, "error": repr(exc),
                             "at": datetime.now(UTC)})
                        self._dead_lettered(event.type)
                    else:
                        log.warning("batch handler gave up; applying its events one by one", error=repr(exc))
                    return False
                log.warning("handler failed; retrying", error=repr(exc), attempt=attempt)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        return False

    async def _apply(self, handler: Handler, event: Event) -> None:
        if not await self._attempt(lambda: handler(event), attempts=self._max_attempts, event=event):
            return
        # the record names the user (so erasing an account erases it), except the record of
        # account-deleted itself, written after the erase: it keeps only the event id
        fields = {"type": event.type, "at": datetime.now(UTC)}
        if event.type != AccountDeleted.event_type:
            fields["user_id"] = event.user_id
        await self._processed.update_one({"_id": event.id}, {"$setOnInsert": fields}, upsert=True)
        self.handled += 1
        log.info("event handled")


class LagMonitor:
    """Measures every consumer group of this deployment (groups named `<prefix>...`) from the
    broker: per partition, the end offset minus the group's committed offset. Each service
    runs one, so a group's lag stays visible while the consumer itself is down or stuck."""

    def __init__(self, bootstrap: str, prefix: str, interval_seconds: float = 15.0) -> None:
        self._bootstrap, self._prefix, self._interval = bootstrap, prefix, interval_seconds
        # (group, topic, partition) -> messages not yet committed, as of the last measurement
        self.lag: dict[tuple[str, str, int], int] = {}
        self.measured_at: float = 0.0

    async def measure_once(self, admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer) -> None:
        """A group's topics are those it has committed on; a partition of them it has never
        committed on (no event there yet when it last ran) counts from the partition's start."""
        groups = sorted(g[0] for g in await admin.list_consumer_groups() if str(g[0]).startswith(self._prefix))
        committed: dict[tuple[str, TopicPartition], int] = {}
        for group in groups:
            offsets = await admin.list_consumer_group_offsets(group)
            for topic in {tp.topic for tp, meta in offsets.items() if meta.offset >= 0}:
                for partition in consumer.partitions_for_topic(topic) or ():
                    committed[(group, TopicPartition(topic, partition))] = -1
            for tp, meta in offsets.items():
                if meta.offset >= 0:
                    committed[(group, tp)] = meta.offset
        partitions = sorted({tp for _, tp in committed})
        ends = await consumer.end_offsets(partitions) if partitions else {}
        starts = await consumer.beginning_offsets(partitions) if -1 in committed.values() else {}
        self.lag = {(group, tp.topic, tp.partition): max(0, ends[tp] - (offset if offset >= 0 else starts.get(tp, 0)))
                    for (group, tp), offset in committed.items() if tp in ends}
        self.measured_at = datetime.now(UTC).timestamp()

    async def run(self) -> None:
        while True:
            admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, request_timeout_ms=5000)
            consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False,
                                        request_timeout_ms=5000)
            try:
                await admin.start()
                await consumer.start()
                while True:
                    await self.measure_once(admin, consumer)
                    await asyncio.sleep(self._interval)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka away: the last figures stay, measured_at tells their age
                # new clients next time: after a broker restart the old ones may never reconnect
                # (NodeNotReadyError on every call, seen after the Kafka outage tests)
                log.warning("consumer lag not measured", error=repr(exc))
            finally:
                for client in (consumer, admin):
                    try:
                        await (client.stop() if client is consumer else client.close())
                    except Exception:
                        pass
            await asyncio.sleep(self._interval)
