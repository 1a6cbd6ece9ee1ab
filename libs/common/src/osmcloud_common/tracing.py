"""Traces (OpenTelemetry): off unless the standard `OTEL_*` variables ask for them.

On, every service records spans at the seams it owns — HTTP server (http.py) and client
(service_client.py, hand-overs), Kafka produce and consume (kafka.py), MongoDB commands
(mongo.py), S3 calls (blobstore.py) — and carries the W3C trace context (`traceparent`)
in HTTP headers, in Kafka headers beside `request_id`, and in outbox entries, so an event
published later by the relay continues the trace of the request that recorded it
(docs/observability.md, "Traces").

Off (the default), nothing is recorded and nothing is added to headers, events or
documents: every helper here returns at its first line, no span object is made, and no
MongoDB command listener is registered.

A request that comes through the gateway without a `traceparent` starts a trace whose id
is its `X-Request-Id` (nginx's `$request_id`, 32 hex digits): the id the client got back
finds the trace, and auth's verify sub-request of the same request joins it."""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterable, Iterator, Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import aiohttp
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue
from structlog.typing import EventDict, WrappedLogger

from .logging import get_logger

if TYPE_CHECKING:  # the SDK is imported when tracing is turned on
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from pymongo import monitoring

    from .events import Event
    from .settings import ServiceSettings

log = get_logger(__name__)

EXPORTERS = ("otlp", "console", "none")
PROTOCOLS = ("http/protobuf",)
TRACEPARENT = "traceparent"
_HEX32 = re.compile(r"^[0-9a-f]{32}$")

_tracer: trace.Tracer | None = None  # None: tracing is off
_provider: TracerProvider | None = None
_propagate: Any = None  # opentelemetry.propagate, imported when tracing is turned on (its import reads entry points)
_trace_id_hint: contextvars.ContextVar[int | None] = contextvars.ContextVar("osmcloud_trace_id_hint", default=None)


def enabled() -> bool:
    return _tracer is not None


# ---------------------------------------------------------------- configuration
def _exporter_names(traces_exporter: str) -> list[str]:
    return [n.strip().lower() for n in traces_exporter.split(",") if n.strip()]


def wanted(*, sdk_disabled: bool, traces_exporter: str, otlp_endpoint: str, otlp_traces_endpoint: str) -> bool:
    """Tracing is on when the SDK is not disabled and an exporter is named
    (`OTEL_TRACES_EXPORTER` other than `none`) or an OTLP endpoint is set."""
    if sdk_disabled:
        return False
    names = _exporter_names(traces_exporter)
    if names:
        return names != ["none"]
    return bool(otlp_endpoint or otlp_traces_endpoint)


def problems(*, traces_exporter: str, otlp_protocol: str, otlp_traces_protocol: str) -> list[str]:
    """Why these tracing settings cannot start (empty: they can)."""
    found = []
    unknown = [n for n in _exporter_names(traces_exporter) if n not in EXPORTERS]
    if unknown:
        found.append(f"OTEL_TRACES_EXPORTER names {', '.join(unknown)}; this build exports to "
                     f"{', '.join(EXPORTERS)} (run an OpenTelemetry Collector for other backends)")
    for variable, value in (("OTEL_EXPORTER_OTLP_PROTOCOL", otlp_protocol),
                            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", otlp_traces_protocol)):
        if value and value.strip().lower() not in PROTOCOLS:
            found.append(f"{variable} is {value!r}; this build speaks OTLP over {', '.join(PROTOCOLS)} "
                         f"(port 4318 of a collector)")
    return found


def _request_id_trace_ids() -> IdGenerator:
    """The SDK's random ids, except that a trace started for a request without a
    `traceparent` takes the request's id (set in `_trace_id_hint` by `server_span`)."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class RequestIdTraceIds(RandomIdGenerator):
        def generate_trace_id(self) -> int:
            return _trace_id_hint.get() or super().generate_trace_id()

        def is_trace_id_random(self) -> bool:
            return False  # request ids are random too, but not promised to be

    return RequestIdTraceIds()


def configure(service_name: str, settings: ServiceSettings | None = None, *,
              exporters: Iterable[SpanExporter] | None = None,
              simple: bool = False) -> bool:
    """Turns tracing on when `settings` (ServiceSettings: its `otel_*` fields) ask for it, or
    with the given span `exporters` (tests). Once per process; later calls change nothing.
    The exporters, the sampler (`OTEL_TRACES_SAMPLER`), resource attributes
    (`OTEL_RESOURCE_ATTRIBUTES`) and batching (`OTEL_BSP_*`) read their standard variables
    themselves. Returns whether tracing is on."""
    global _tracer, _provider, _propagate
    if _tracer is not None:
        return True
    if exporters is None:
        if settings is None or not wanted(
                sdk_disabled=settings.otel_sdk_disabled, traces_exporter=settings.otel_traces_exporter,
                otlp_endpoint=settings.otel_exporter_otlp_endpoint,
                otlp_traces_endpoint=settings.otel_exporter_otlp_traces_endpoint):
            return False
        if problems(traces_exporter=settings.otel_traces_exporter, otlp_protocol=settings.otel_exporter_otlp_protocol,
                    otlp_traces_protocol=settings.otel_exporter_otlp_traces_protocol):
            return False  # settings.startup_problems names them and the service refuses to start
        exporters = _exporters(settings.otel_traces_exporter)
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    # OTEL_SERVICE_NAME, when set, names the service (Resource.create reads it)
    own = {} if settings is not None and settings.otel_service_name else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(own), id_generator=_request_id_trace_ids())
    for exporter in exporters:
        provider.add_span_processor(SimpleSpanProcessor(exporter) if simple else BatchSpanProcessor(exporter))
    from opentelemetry import propagate
    _propagate = propagate
    _provider = provider
    _tracer = provider.get_tracer("osmcloud")
    return True


def _exporters(traces_exporter: str) -> list[SpanExporter]:
    names = _exporter_names(traces_exporter) or ["otlp"]
    made: list[SpanExporter] = []
    if "otlp" in names:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        made.append(OTLPSpanExporter())  # endpoint, headers, timeout, compression: OTEL_EXPORTER_OTLP_*
    if "console" in names:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter
        made.append(ConsoleSpanExporter())
    return made


def shutdown() -> None:
    """Exports what is still buffered and turns tracing off (at exit, and between tests)."""
    global _tracer, _provider
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def flush() -> None:
    if _provider is not None:
        _provider.force_flush()


def add_trace_ids(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """structlog processor (traces on): the current trace and span ids on every log line."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict


# ---------------------------------------------------------------- context in carriers
def inject(carrier: dict[str, str]) -> dict[str, str]:
    """Adds the current trace context (`traceparent`, `tracestate`) to `carrier`."""
    if _tracer is not None:
        _propagate.inject(carrier)
    return carrier


def current_traceparent() -> str | None:
    """The current span's `traceparent`, to store with work done later (outbox entries)."""
    if _tracer is None:
        return None
    return inject({}).get(TRACEPARENT)


def _extract(headers: Mapping[str, str] | None) -> otel_context.Context | None:
    if not headers or TRACEPARENT not in headers:
        return None
    ctx = _propagate.extract(headers)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def _kafka_headers(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    return {k: (v.decode(errors="replace") if isinstance(v, bytes) else str(v)) for k, v in (headers or ())}


# ---------------------------------------------------------------- HTTP server
@contextlib.contextmanager
def server_span(method: str, route: str, path: str, headers: Mapping[str, str], request_id: str
                ) -> Iterator[trace.Span | None]:
    """The span of one request this service answers (http.py's middleware), continuing
    the caller's `traceparent`; without one, the trace's id is the request id."""
    if _tracer is None:
        yield None
        return
    parent = _extract(headers)
    hint = int(request_id, 16) if parent is None and _HEX32.match(request_id) and int(request_id, 16) else None
    token = _trace_id_hint.set(hint)
    try:
        span = _tracer.start_span(f"{method} {route}", context=parent, kind=SpanKind.SERVER, attributes={
            "http.request.method": method, "http.route": route, "url.path": path,
            "osmcloud.request_id": request_id})
    finally:
        _trace_id_hint.reset(token)
    with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
        yield span


def finish_server_span(span: trace.Span | None, status: int) -> None:
    if span is None:
        return
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
        span.set_attribute("error.type", str(status))


# ---------------------------------------------------------------- HTTP client (aiohttp)
async def _client_start(session: aiohttp.ClientSession, ctx: SimpleNamespace,
                        params: aiohttp.TraceRequestStartParams) -> None:
    if _tracer is None:  # turned off (tests) while a session made with it was still open
        return
    url = params.url
    span = _tracer.start_span(f"{params.method} {url.path}", kind=SpanKind.CLIENT, attributes={
        "http.request.method": params.method, "url.full": str(url.with_query(None)),
        "server.address": url.host or "", "server.port": url.port or 0})
    ctx.span = span
    _propagate.inject(params.headers, context=trace.set_span_in_context(span))


async def _client_end(session: aiohttp.ClientSession, ctx: SimpleNamespace,
                      params: aiohttp.TraceRequestEndParams) -> None:
    span = getattr(ctx, "span", None)
    if span is not None:
        span.set_attribute("http.response.status_code", params.response.status)
        if params.response.status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()


async def _client_failed(session: aiohttp.ClientSession, ctx: SimpleNamespace,
                         params: aiohttp.TraceRequestExceptionParams) -> None:
    span = getattr(ctx, "span", None)
    if span is not None:
        span.set_status(Status(StatusCode.ERROR, repr(params.exception)))
        span.set_attribute("error.type", type(params.exception).__name__)
        span.end()


def client_trace_configs() -> list[aiohttp.TraceConfig]:
    """For an aiohttp.ClientSession: a CLIENT span per request, its context sent as
    `traceparent` (none when tracing is off)."""
    if _tracer is None:
        return []
    config = aiohttp.TraceConfig()
    config.on_request_start.append(_client_start)
    config.on_request_end.append(_client_end)
    config.on_request_exception.append(_client_failed)
    return [config]


# ---------------------------------------------------------------- Kafka
class ProducerSpans:
    """PRODUCER spans for messages about to be sent (kafka.py). Each continues the trace in
    the message's own `traceparent` header (an outbox entry's: the request that recorded
    the event) or else the current one, and the header is replaced by the span's own, which
    the consumer continues."""

    def __init__(self) -> None:
        self._spans: list[trace.Span] = []

    def headers(self, topic: str, key: str, headers: dict[str, str]) -> dict[str, str]:
        if _tracer is None:
            return headers
        span = _tracer.start_span(f"send {topic}", context=_extract(headers), kind=SpanKind.PRODUCER, attributes={
            "messaging.system": "kafka", "messaging.operation.type": "send", "messaging.destination.name": topic,
            "messaging.kafka.message.key": key, "messaging.message.id": headers.get("event_id", "")})
        self._spans.append(span)
        carrier = {k: v for k, v in headers.items() if k not in (TRACEPARENT, "tracestate")}
        _propagate.inject(carrier, context=trace.set_span_in_context(span))
        return carrier

    def end(self, error: BaseException | None = None) -> None:
        for span in self._spans:
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, repr(error)))
                span.set_attribute("error.type", type(error).__name__)
            span.end()
        self._spans.clear()


def _consumer_attributes(message: Any, event: Event) -> dict[str, AttributeValue]:
    return {"messaging.system": "kafka", "messaging.operation.type": "process",
            "messaging.destination.name": getattr(message, "topic", "") or "",
            "messaging.destination.partition.id": str(getattr(message, "partition", "")),
            "messaging.kafka.offset": int(getattr(message, "offset", 0) or 0),
            "messaging.message.id": event.id, "osmcloud.event_type": event.type}


@contextlib.contextmanager
def consumer_span(message: Any, event: Event) -> Iterator[trace.Span | None]:
    """The CONSUMER span of one event's handling, a child of the span that sent it."""
    if _tracer is None:
        yield None
        return
    parent = _extract(_kafka_headers(getattr(message, "headers", None)))
    topic = getattr(message, "topic", "") or event.type
    with _tracer.start_as_current_span(f"process {topic}", context=parent, kind=SpanKind.CONSUMER,
                                       attributes=_consumer_attributes(message, event)) as span:
        yield span


def message_context(message: Any) -> otel_context.Context | None:
    """The trace context a consumed message carries (None when off or absent)."""
    if _tracer is None:
        return None
    return _extract(_kafka_headers(getattr(message, "headers", None)))


@contextlib.contextmanager
def batch_span(event_type: str, contexts: list[otel_context.Context | None]) -> Iterator[trace.Span | None]:
    """The CONSUMER span of a batch handler's run: linked to every message's trace, and a
    child of it when they all share one (a batch of one event, or of one request's)."""
    if _tracer is None:
        yield None
        return
    span_contexts = [trace.get_current_span(c).get_span_context() for c in contexts if c is not None]
    traces = {sc.trace_id for sc in span_contexts}
    parent = next(c for c in contexts if c is not None) if len(traces) == 1 else None
    with _tracer.start_as_current_span(
            f"process {event_type} batch", context=parent, kind=SpanKind.CONSUMER,
            links=[Link(sc) for sc in span_contexts],
            attributes={"messaging.system": "kafka", "messaging.operation.type": "process",
                        "messaging.batch.message_count": len(contexts),
                        "osmcloud.event_type": event_type}) as span:
        yield span


# ---------------------------------------------------------------- spans of our own calls
@contextlib.contextmanager
def span(name: str, kind: SpanKind = SpanKind.INTERNAL, attributes: Mapping[str, Any] | None = None
         ) -> Iterator[trace.Span | None]:
    """A span around a call of ours (an S3 request, a hand-over); nothing when off."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(name, kind=kind, attributes=attributes) as current:
        yield current


# ---------------------------------------------------------------- MongoDB
def mongo_listeners() -> list[monitoring.CommandListener]:
    """PyMongo command listeners for AsyncMongoClient(event_listeners=...): a CLIENT span per
    command (none when tracing is off, so PyMongo makes no events at all)."""
    if _tracer is None:
        return []
    from pymongo import monitoring

    tracer = _tracer

    class CommandSpans(monitoring.CommandListener):
        def __init__(self) -> None:
            self._open: dict[tuple[int, Any], trace.Span] = {}

        def started(self, event: monitoring.CommandStartedEvent) -> None:
            command = event.command
            collection = command.get(event.command_name)
            host, port = event.connection_id
            attributes: dict[str, AttributeValue] = {
                "db.system.name": "mongodb", "db.namespace": event.database_name,
                "db.operation.name": event.command_name, "server.address": str(host)}
            if port is not None:  # None: a unix socket
                attributes["server.port"] = int(port)
            target = event.database_name
            if isinstance(collection, str):
                attributes["db.collection.name"] = collection
                target = collection
            self._open[(event.request_id, event.connection_id)] = tracer.start_span(
                f"{event.command_name} {target}", kind=SpanKind.CLIENT, attributes=attributes)

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            span = self._open.pop((event.request_id, event.connection_id), None)
            if span is not None:
                span.end()

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            span = self._open.pop((event.request_id, event.connection_id), None)
            if span is not None:
                failure = event.failure or {}
                span.set_status(Status(StatusCode.ERROR, str(failure.get("errmsg", ""))[:200]))
                span.set_attribute("error.type", str(failure.get("codeName") or failure.get("code") or "error"))
                span.end()

    return [CommandSpans()]
