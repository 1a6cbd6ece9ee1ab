"""Kafka at the edges: a producer that survives broker outages, topic set-up, and an
idempotent consumer (effect first, then remember the event id, then commit the offset)."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from pydantic import ValidationError

from .events import CATALOGUE, DOMAINS, Event, topic_for
from .logging import get_logger

log = get_logger(__name__)

Handler = Callable[[Event], Awaitable[None]]


class KafkaProducer:
    """Connects lazily and reconnects after failures; publish raises while Kafka is away
    so that the outbox keeps the event and retries."""

    def __init__(self, bootstrap: str, client_id: str) -> None:
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

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
        producer = await self._connected()
        try:
            await producer.send_and_wait(
                topic,
                value=value.encode(),
                key=key.encode(),
                headers=[(k, v.encode()) for k, v in (headers or {}).items()],
            )
        except KafkaError:
            await self.close()  # start afresh next time
            raise

    async def close(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception:
                pass


async def ensure_topics(bootstrap: str, prefix: str, partitions: int = 4, domains=DOMAINS) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [topic_for(d, prefix) for d in domains if topic_for(d, prefix) not in existing]
        if missing:
            try:
                await admin.create_topics([NewTopic(t, partitions, 1) for t in missing])
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


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


class EventConsumer:
    """Runs handlers for the event types a service reacts to.

    Each handler must be idempotent (at-least-once delivery); on top of that, processed
    event ids are remembered so a redelivered event is skipped. Offsets are committed only
    after the effect is stored. A handler that keeps failing is retried with backoff; an
    event that cannot be parsed is logged and set aside in `dead_letters`."""

    def __init__(self, *, bootstrap: str, topic_prefix: str, group_id: str, handlers: dict[str, Handler],
                 database, max_attempts: int = 8,
                 skip: Callable[[Event], Awaitable[bool]] | None = None) -> None:
        unknown = set(handlers) - set(CATALOGUE)
        if unknown:
            raise ValueError(f"handlers for unknown event types: {sorted(unknown)}")
        self._bootstrap = bootstrap
        self._group_id = group_id
        self._handlers = handlers
        self._topics = sorted({topic_for(CATALOGUE[t].domain, topic_prefix) for t in handlers})
        self._processed = database["processed_events"]
        self._dead_letters = database["dead_letters"]
        self._max_attempts = max_attempts
        self._skip = skip  # e.g. events of an account already deleted here
        self.handled = 0
        self.connected = False

    async def run(self) -> None:
        while True:
            consumer = AIOKafkaConsumer(
                *self._topics,
                bootstrap_servers=self._bootstrap,
                group_id=self._group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=50,
                metadata_max_age_ms=5000,
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
                    await consumer.stop()
                except Exception:
                    pass

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=200)
            for tp, messages in batches.items():
                for message in messages:
                    await self._handle_message(message)
                await consumer.commit({tp: messages[-1].offset + 1})

    async def _handle_message(self, message) -> None:
        try:
            event = Event.from_json(message.value)
        except (ValidationError, ValueError) as exc:
            log.error("unreadable event set aside", error=str(exc), offset=message.offset)
            await self._dead_letters.insert_one(
                {"raw": message.value.decode(errors="replace"), "error": str(exc), "at": datetime.now(UTC)}
            )
            return
        handler = self._handlers.get(event.type)
        if handler is None:
            return
        if await self._processed.find_one({"_id": event.id}, {"_id": 1}):
            return
        if self._skip is not None and await self._skip(event):
            log.info("event skipped", event_id=event.id, event_type=event.type)
            return
        request_id = dict(message.headers or ()).get("request_id", b"").decode()
        with structlog.contextvars.bound_contextvars(event_id=event.id, event_type=event.type,
                                                    request_id=request_id or None):
            await self._apply(handler, event)

    async def _apply(self, handler: Handler, event: Event) -> None:
        delay = 0.2
        for attempt in range(1, self._max_attempts + 1):
            try:
                await handler(event)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt == self._max_attempts:
                    log.error("handler gave up; event set aside", error=repr(exc))
                    await self._dead_letters.insert_one(
                        {"event": event.model_dump(mode="json"), "error": repr(exc), "at": datetime.now(UTC)}
                    )
                    return
                log.warning("handler failed; retrying", error=repr(exc), attempt=attempt)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        await self._processed.update_one(
            {"_id": event.id}, {"$setOnInsert": {"type": event.type, "at": datetime.now(UTC)}}, upsert=True
        )
        self.handled += 1
        log.info("event handled")
