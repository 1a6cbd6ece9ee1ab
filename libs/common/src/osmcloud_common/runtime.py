"""Wires what every service shares — Mongo, Kafka producer + outbox relay, consumers,
clock, blob store — into an aiohttp app's lifecycle (cleanup_ctx), and runs it.

A service's composition root builds a `Runtime`, registers its collections, handlers
and background jobs, and calls `serve`. Dependencies that are down at start are retried
in the background while /readyz answers 503: a service never crashes for want of them."""

import asyncio
import contextlib
import gc
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge
from pymongo.asynchronous.collection import AsyncCollection

from . import tracing
from .admin import AdminApi
from .audit import AuditLog
from .blobstore import BlobStore
from .clock import Clock, SharedTestClock, SystemClock
from .deleted_accounts import DeletedAccounts, Erase
from .errors import BadRequest
from .events import AccountDeleted, Event, Payload, make_event
from .handover import BatchLocks, Handover, apply_events, parse_events
from .http import REGISTRY_KEY, add_readiness_check, create_app
from .kafka import BatchHandler, EventConsumer, Handler, KafkaProducer, LagMonitor, ensure_topics, kafka_reachable
from .logging import configure_logging, get_logger
from .metrics import Samples, counter_function, gauge_function
from .mongo import Collection, Document, connect, delete_user_data, mongo_reachable
from .outbox import OutboxRelay, outbox_entry
from .settings import ConfigurationError, ServiceSettings

log = get_logger(__name__)


class Runtime:
    def __init__(self, settings: ServiceSettings, *, uses_blobs: bool = False) -> None:
        self.settings = settings
        tracing.configure(settings.service_name, settings)  # first: the clients below trace when it is on
        self.mongo = connect(settings.mongo_url)
        self.db = self.mongo[settings.database_name]
        self.clock: Clock = SharedTestClock(self.mongo) if settings.test_clock else SystemClock()
        self.producer = KafkaProducer(settings.kafka_bootstrap, client_id=settings.service_name)
        self.relay = OutboxRelay(self.producer, [], poll_seconds=settings.outbox_poll_seconds)
        self.lag_monitor = LagMonitor(settings.kafka_bootstrap, settings.kafka_topic_prefix,
                                      settings.consumer_lag_poll_seconds)
        self.blobs = (BlobStore(settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key,
                                settings.s3_bucket, settings.s3_secure,
                                connect_timeout=settings.s3_connect_timeout_seconds,
                                read_timeout=settings.s3_read_timeout_seconds) if uses_blobs else None)
        self._handlers: dict[str, Handler] = {}
        self._batch_handlers: dict[str, BatchHandler] = {}
        self._batch_locks = BatchLocks()  # the consumer's and the hand-overs' (handover.BatchLocks)
        self._jobs: list[Callable[[], Awaitable[None]]] = []
        self._startup: list[Callable[[], Awaitable[None]]] = []
        self._topics_ready = False
        self._set_up = False  # the start-up steps ran: requests are served (Kafka may still be away)
        self._started = False
        self.consumer: EventConsumer | None = None
        self.deleted_accounts: DeletedAccounts | None = None
        self.handovers: dict[str, Handover] = {}
        self._audit: AuditLog | None = None
        self.admin: AdminApi | None = None  # made with the app (create_app)
        self._startup.append(lambda: self.audit.create_indexes())
        self._jobs.append(lambda: self.audit.run_purge())

    @property
    def audit(self) -> AuditLog:
        """This service's audit log (audit.py), in its own database."""
        if self._audit is None:
            self._audit = AuditLog(self.db["audit_log"], self.clock, self.settings.service_name,
                                   self.settings.audit_retention_days, DeletedAccounts(self.db))
        return self._audit

    # ------------------------------------------------------------ registration
    def outbox_collection(self, name: str) -> AsyncCollection[Document]:
        """A collection whose documents may carry pending events."""
        collection = self.db[name]
        self.relay.add_collection(collection)
        return collection

    def on_event(self, payload_type: type[Payload], handler: Callable[[Event], Awaitable[None]]) -> None:
        self._handlers[payload_type.event_type] = handler

    def on_events(self, payload_type: type[Payload], handler: BatchHandler) -> None:
        """Like on_event, but `handler` gets every such event one poll brought, as a list (it
        must be idempotent as a whole: no processed-id bookkeeping is done for it)."""
        self._batch_handlers[payload_type.event_type] = handler

    def on_account_deleted(self, erase: Erase | None = None) -> None:
        """On `account-deleted`: remember the account as deleted, then `erase(user_id)` (must be
        idempotent; by default every document of the user in this service's database). From
        then on, other events about that user are dropped, so an event that arrives late on
        another topic cannot bring the user's data back."""
        deleted = self.deleted_accounts = DeletedAccounts(self.db)
        erase_data: Erase = erase or self.erase_user_documents

        async def account_deleted(event: Event) -> None:
            await deleted.remember(event.user_id, event.occurred_at)
            await erase_data(event.user_id)
            await self.audit.erase(event.user_id)  # but for a record that the deletion happened
        self.on_event(AccountDeleted, account_deleted)

    async def erase_user_documents(self, user_id: str) -> int:
        """Every document of the user in this service's database (all carry `user_id`)."""
        documents = await delete_user_data(self.db, user_id)
        log.info("account data erased", user_id=user_id, documents=documents)
        return documents

    async def _of_deleted_account(self, event: Event) -> bool:
        return (self.deleted_accounts is not None and event.type != AccountDeleted.event_type
                and await self.deleted_accounts.contains(event.user_id))

    def background(self, job: Callable[[], Awaitable[None]]) -> None:
        """A long-running job (periodic purge, deadline scan); restarted if it fails."""
        self._jobs.append(job)

    def on_startup(self, step: Callable[[], Awaitable[None]]) -> None:
        """Set-up that needs a dependency (indexes, bucket); retried until it succeeds."""
        self._startup.append(step)

    # ------------------------------------------------------------ events
    def event(self, payload: Payload, user_id: str) -> dict[str, Any]:
        """An outbox entry for `payload`, to be written with the change that causes it."""
        evt = make_event(payload, user_id=user_id, producer=self.settings.service_name,
                         occurred_at=self.clock.now())
        return outbox_entry(evt, self.settings.kafka_topic_prefix)

    def events_written(self, collection: Collection | None = None, doc_id: Any = None,
                       outbox: list[dict[str, Any]] | None = None) -> None:
        """Call after a write that carried events: the relay publishes them at once. Naming
        the written document spares the relay a scan of every outbox collection; giving its
        outbox as the write left it (OutboxRelay.wake) spares it reading the document."""
        self.relay.wake(collection, doc_id, outbox)

    # ------------------------------------------------------------ read-your-writes (handover.py)
    def hand_over_to(self, target: str, base_url: str) -> None:
        """Names a service whose projection a client reads right after some of our writes."""
        self.handovers[target] = Handover(target, base_url, self.settings.gateway_secret,
                                          self.settings.handover_timeout_seconds)

    async def hand_over(self, target: str, entries: list[dict[str, Any]]) -> bool:
        """Gives `target` the events just recorded (outbox entries) and waits until it has
        applied them; False (logged) when it could not, Kafka then brings them."""
        if not entries or not self.settings.handover:
            return True
        return await self.handovers[target].deliver(entries)

    async def _events_handed_over(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            raise BadRequest("the body must be JSON: {\"events\": [...]}") from None
        return web.json_response({"applied": await self.apply_handed_over(parse_events(body))})

    async def apply_handed_over(self, events: list[Event]) -> int:
        """Applies events as the consumer would (a hand-over, a dead letter replayed): each once."""
        return await apply_events(events, handlers=self._handlers, batch_handlers=self._batch_handlers,
                                  processed=self.db["processed_events"], skip=self._of_deleted_account,
                                  batch_locks=self._batch_locks)

    # ------------------------------------------------------------ lifecycle
    async def _retry_forever(self, name: str, step: Callable[[], Awaitable[None]]) -> None:
        delay = 0.5
        while True:
            try:
                await step()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("waiting for a dependency", step=name, error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _keep_running(self, name: str, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await job()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("background job failed; restarting", job=name, error=repr(exc))
                await asyncio.sleep(1)

    async def _start(self) -> None:
        for step in self._startup:
            await self._retry_forever(getattr(step, "__name__", "startup"), step)
        self._set_up = True

        async def topics() -> None:
            await ensure_topics(self.settings.kafka_bootstrap, self.settings.kafka_topic_prefix,
                                partitions=self.settings.kafka_topic_partitions,
                                replication_factor=self.settings.kafka_topic_replication_factor)
            self._topics_ready = True
        await self._retry_forever("kafka-topics", topics)
        self._started = True

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        if isinstance(self.clock, SharedTestClock):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.clock.refresh(), 3)
        tasks = [asyncio.create_task(self._start(), name="startup")]
        if isinstance(self.clock, SharedTestClock):
            tasks.append(asyncio.create_task(self.clock.run(), name="test-clock"))

        async def after_start() -> None:
            await tasks[0]
            runners = [self._keep_running("outbox-relay", self.relay.run),
                       self._keep_running("consumer-lag", self.lag_monitor.run)]
            if self._handlers or self._batch_handlers:
                self.consumer = EventConsumer(
                    bootstrap=self.settings.kafka_bootstrap, topic_prefix=self.settings.kafka_topic_prefix,
                    group_id=f"{self.settings.kafka_topic_prefix}{self.settings.service_name}",
                    handlers=self._handlers, database=self.db, skip=self._of_deleted_account,
                    batch_handlers=self._batch_handlers, max_records=self.settings.consumer_max_records,
                    fetch_max_wait_ms=self.settings.consumer_fetch_max_wait_ms, batch_locks=self._batch_locks,
                    commit_seconds=self.settings.consumer_commit_seconds)
                runners.append(self._keep_running("consumer", self.consumer.run))
            runners += [self._keep_running(getattr(j, "__name__", "job"), j) for j in self._jobs]
            await asyncio.gather(*runners)

        tasks.append(asyncio.create_task(after_start(), name="workers"))
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.producer.close()
        if self.blobs is not None:
            await self.blobs.close()
        for handover in self.handovers.values():
            await handover.close()
        await self.mongo.close()
        tracing.flush()  # the spans of the last requests, before the process exits

    def readiness(self, app: web.Application) -> None:
        async def mongo() -> bool:
            return await mongo_reachable(self.mongo)

        async def kafka() -> bool:
            return self._topics_ready and await kafka_reachable(self.settings.kafka_bootstrap)

        async def started() -> bool:
            return self._started and (self.consumer is None or self.consumer.connected
                                      or not (self._handlers or self._batch_handlers))

        add_readiness_check(app, "mongo", mongo)
        add_readiness_check(app, "kafka", kafka)
        add_readiness_check(app, "started", started)
        if self.blobs is not None:
            add_readiness_check(app, "s3", self.blobs.reachable)

    def create_app(self) -> web.Application:
        report = self.clock.report if isinstance(self.clock, SharedTestClock) else None
        app = create_app(self.settings.service_name, gateway_secret=self.settings.gateway_secret,
                         clock_report=report, serving=lambda: self._set_up)
        self.readiness(app)
        app.cleanup_ctx.append(self.lifecycle)
        app.router.add_post("/internal/events", self._events_handed_over)
        self.admin = AdminApi(self, app)
        self._bind_metrics(app[REGISTRY_KEY])
        return app

    def _bind_metrics(self, registry: CollectorRegistry) -> None:
        """What an operator watches (docs/observability.md): events relayed and applied, the
        outbox backlog, dead letters, every consumer group's lag and failed hand-overs."""
        relay, lag = self.relay, self.lag_monitor
        Gauge("outbox_published_total", "events relayed to Kafka", registry=registry).set_function(
            lambda: relay.published)
        Gauge("events_handled_total", "events consumed and applied", registry=registry).set_function(
            lambda: self.consumer.handled if self.consumer else 0)
        Gauge("handover_failed_total", "hand-overs to another service that failed (Kafka brought the events)",
              registry=registry).set_function(lambda: sum(h.failed for h in self.handovers.values()))
        gauge_function(registry, "outbox_pending_documents", "documents holding events not yet relayed to Kafka",
                       lambda: (((name,), n) for name, (n, _) in relay.backlog().items()), ("collection",))
        gauge_function(registry, "outbox_oldest_pending_seconds",
                       "how long the oldest unrelayed event has waited (0: none)",
                       lambda: (((name,), age) for name, (_, age) in relay.backlog().items()), ("collection",))
        def dead_lettered() -> Samples:
            consumer = self.consumer
            if consumer is None:
                return ()
            return (((consumer.group_id, t), n) for t, n in consumer.dead_lettered.items())
        counter_function(registry, "events_dead_lettered", "events set aside in dead_letters by this process",
                         dead_lettered, ("group", "event_type"))
        gauge_function(registry, "kafka_consumer_lag", "messages of a partition its group has not yet committed",
                       lambda: (((g, t, str(p)), n) for (g, t, p), n in lag.lag.items()),
                       ("group", "topic", "partition"))
        gauge_function(registry, "kafka_consumer_lag_measured_timestamp_seconds",
                       "when kafka_consumer_lag was last measured (0: never)",
                       lambda: [((), lag.measured_at)])


async def freeze_startup_objects(_: web.Application) -> None:
    """Takes what exists once the app has started (modules, settings, clients: ~100,000
    objects) out of the garbage collector's full collections, which then walk only what
    was made since: a 10,000-file listing spent ~15 % of files' CPU walking them."""
    gc.collect()
    gc.freeze()


def serve(app: web.Application, settings: ServiceSettings) -> None:
    """Runs the app; first refuses to start (exit code 2, naming each variable) when a
    secret the service needs is missing or a published default."""
    configure_logging(settings.service_name, settings.log_level)
    try:
        settings.check_startup()
    except ConfigurationError as exc:
        log.error("configuration refused", reason=str(exc))
        print(str(exc), file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    log.info("listening", host=settings.http_host, port=settings.http_port, traces=tracing.enabled())
    app.on_startup.append(freeze_startup_objects)  # last: after every other startup step
    web.run_app(app, host=settings.http_host, port=settings.http_port, print=None, access_log=None,
                shutdown_timeout=5)
