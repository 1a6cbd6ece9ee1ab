"""Traces on the shared seams, with an in-process exporter: one upload's trace runs from the
request the gateway forwarded (its X-Request-Id becomes the trace id), through the outbox
entry and the relay's Kafka send, to the consumer's handler in another service, and through
a read-your-writes hand-over; off (the default), nothing is recorded or added anywhere."""

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from osmcloud_common import tracing
from osmcloud_common.events import Event, FileDeleted, FileUploaded, make_event
from osmcloud_common.handover import Handover, apply_events, parse_events
from osmcloud_common.http import create_app
from osmcloud_common.kafka import EventConsumer, KafkaProducer
from osmcloud_common.outbox import OUTBOX_FIELD, PENDING_FIELD, OutboxRelay, outbox_entry
from osmcloud_common.settings import ServiceSettings

AT = datetime(2026, 3, 1, tzinfo=UTC)
REQUEST_ID = "0af7651916cd43dd8448eb211c80319c"  # nginx's $request_id: 32 hex digits
SECRET = "a-gateway-secret-for-tests-0123456789"


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.shutdown()
    assert tracing.configure("test", exporters=[exporter], simple=True)
    yield exporter
    tracing.shutdown()


class Outbox:
    """One document's outbox, as the relay reads and clears it."""

    def __init__(self):
        self.doc = {"_id": "head"}

    async def find_one(self, query, projection=None):
        return self.doc if self.doc.get(PENDING_FIELD) else None

    async def update_one(self, query, update):
        self.doc.pop(OUTBOX_FIELD, None)
        self.doc.pop(PENDING_FIELD, None)
        return SimpleNamespace(modified_count=1)


class FakeKafka:
    """aiokafka's producer, keeping what was sent."""

    def __init__(self):
        self.sent = []

    async def send(self, topic, value, key, headers):
        self.sent.append(SimpleNamespace(topic=topic, value=value, key=key, headers=headers, partition=0,
                                         offset=len(self.sent)))
        done = __import__("asyncio").get_running_loop().create_future()
        done.set_result(None)
        return done


class Processed(dict):
    async def find_one(self, query, projection=None):
        return self.get(query["_id"])

    async def update_one(self, query, update, upsert=False):
        self[query["_id"]] = {"_id": query["_id"]}

    def find(self, query, projection=None):
        found = [self[i] for i in query["_id"]["$in"] if i in self]

        class Cursor:
            async def to_list(self, length=None):
                return found
        return Cursor()

    async def insert_many(self, docs, ordered=True):
        for d in docs:
            self[d["_id"]] = d


class Database(dict):
    def __missing__(self, name):
        self[name] = Processed()
        return self[name]


def _uploaded(user="u1", name="a.gpx"):
    return make_event(FileUploaded(file_type="GPX", name=name, version_id="v1", size=3, checksum="c", updated_at=AT),
                      user_id=user, producer="files", occurred_at=AT)


def _deleted(user="u1", name="a.gpx"):
    return make_event(FileDeleted(file_type="GPX", name=name, category="tracks", size=3, last_version_id="v1",
                                  tombstone_version_id="t1", deleted_at=AT, tombstone_update_ms=1),
                      user_id=user, producer="files", occurred_at=AT)


async def _serve(app):
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def _trash_app(applied: list):
    """The receiving side of hand-overs, as Runtime wires it."""
    app = create_app("trash", gateway_secret=SECRET)

    async def deleted(event: Event):
        applied.append(event.type)

    async def events(request):
        handled = await apply_events(parse_events(await request.json()), handlers={"file-deleted": deleted},
                                     batch_handlers={}, processed=Processed(), skip=_never)
        return web.json_response({"applied": handled})
    app.router.add_post("/internal/events", events)
    return app


async def _never(event):
    return False


def _by_name(exporter):
    return {s.name: s for s in exporter.get_finished_spans()}


async def test_one_uploads_trace_runs_from_the_gateway_request_to_the_trash_handler(spans):
    applied: list[str] = []
    trash = await _serve(_trash_app(applied))
    outbox = Outbox()
    handover = Handover("trash", str(trash.make_url("")), SECRET, 5)
    files = create_app("files", gateway_secret=SECRET)

    async def upload(request):
        entries = [outbox_entry(_uploaded(), "t."), outbox_entry(_deleted(name="old.gpx"), "t.")]
        outbox.doc.update({OUTBOX_FIELD: entries, PENDING_FIELD: True})
        assert await handover.deliver(entries[1:])  # read-your-writes: the trash page is read next
        return web.json_response({"ok": True})
    files.router.add_put("/api/files/{name}", upload)
    client = await _serve(files)
    try:
        # what nginx forwards: its request id, no traceparent (the client sent none)
        reply = await client.put("/api/files/a.gpx", headers={"X-Gateway-Secret": SECRET, "X-Request-Id": REQUEST_ID})
        assert reply.status == 200
    finally:
        await client.close()
        await handover.close()
        await trash.close()
    assert applied == ["file-deleted"]

    # later, the relay publishes the recorded events; trash's consumer applies them
    kafka = FakeKafka()
    producer = KafkaProducer("unused", "files")
    producer._producer = kafka
    assert await OutboxRelay(producer, [outbox])._flush_doc_now(outbox, "head") == 2
    handled: list[str] = []

    async def files_uploaded(events):
        handled.extend(e.type for e in events)

    async def file_deleted(event):
        handled.append(event.type)
    consumer = EventConsumer(bootstrap="unused", topic_prefix="t.", group_id="t.trash", database=Database(),
                             handlers={"file-deleted": file_deleted}, batch_handlers={"file-uploaded": files_uploaded})
    await consumer._handle_partitions({"p0": kafka.sent})
    assert handled == ["file-uploaded", "file-deleted"]

    finished = spans.get_finished_spans()
    request = next(s for s in finished if s.name == "PUT /api/files/{name}")
    assert request.kind == SpanKind.SERVER and request.parent is None
    assert format(request.context.trace_id, "032x") == REQUEST_ID  # the X-Request-Id finds the trace
    assert {format(s.context.trace_id, "032x") for s in finished} == {REQUEST_ID}, [s.name for s in finished]

    def child_of(span, parent):
        return span.parent is not None and span.parent.span_id == parent.context.span_id

    names = _by_name(spans)
    calls = [s for s in finished if s.name == "POST /internal/events"]
    client_call = next(s for s in calls if s.kind == SpanKind.CLIENT)
    server_call = next(s for s in calls if s.kind == SpanKind.SERVER)
    assert child_of(client_call, request) and child_of(server_call, client_call)
    assert child_of(names["apply file-deleted"], server_call)

    sends = [s for s in finished if s.name == "send t.files"]
    assert len(sends) == 2 and all(s.kind == SpanKind.PRODUCER and child_of(s, request) for s in sends)
    # the message carries the send span's context beside the request id
    headers = [dict(m.headers) for m in kafka.sent]
    assert all(h["request_id"] == REQUEST_ID.encode() for h in headers)
    sent_contexts = {h["traceparent"].decode().split("-")[2] for h in headers}
    assert sent_contexts == {format(s.context.span_id, "016x") for s in sends}

    batch = names["process file-uploaded batch"]
    single = names["process t.files"]
    assert batch.kind == SpanKind.CONSUMER and single.kind == SpanKind.CONSUMER
    assert any(child_of(batch, s) for s in sends) and any(child_of(single, s) for s in sends)
    assert batch.attributes["messaging.batch.message_count"] == 1 and len(batch.links) == 1
    assert single.attributes["osmcloud.event_type"] == "file-deleted"


async def test_a_request_carrying_a_traceparent_continues_that_trace(spans):
    app = create_app("files")

    async def hello(request):
        return web.json_response({})
    app.router.add_get("/api/hello", hello)
    client = await _serve(app)
    try:
        parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        headers = {"traceparent": parent, "X-Request-Id": REQUEST_ID}
        assert (await client.get("/api/hello", headers=headers)).status == 200
        assert (await client.get("/api/missing")).status == 404
    finally:
        await client.close()
    hello_span, missing = spans.get_finished_spans()
    assert format(hello_span.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert format(hello_span.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert hello_span.attributes["osmcloud.request_id"] == REQUEST_ID
    assert hello_span.attributes["http.response.status_code"] == 200
    assert missing.attributes["http.response.status_code"] == 404 and missing.parent is None


async def test_a_batch_of_several_traces_is_linked_to_each_and_continues_none(spans):
    kafka = FakeKafka()
    producer = KafkaProducer("unused", "files")
    producer._producer = kafka
    for request in ("1" * 32, "2" * 32):
        with tracing.server_span("PUT", "/x", "/x", {}, request):
            await producer.publish("t.files", "u1", _uploaded(name=request[:3] + ".gpx").to_json(), {"event_id": "e"})
    seen = []

    async def files_uploaded(events):
        seen.append(len(events))
    consumer = EventConsumer(bootstrap="unused", topic_prefix="t.", group_id="g", database=Database(),
                             handlers={}, batch_handlers={"file-uploaded": files_uploaded})
    await consumer._handle_partitions({"p0": kafka.sent})
    assert seen == [2]
    batch = _by_name(spans)["process file-uploaded batch"]
    assert batch.parent is None and len(batch.links) == 2
    assert {format(link.context.trace_id, "032x") for link in batch.links} == {"1" * 32, "2" * 32}


def test_mongo_commands_are_client_spans(spans):
    [listener] = tracing.mongo_listeners()
    address = ("127.0.0.1", 27017)
    started = SimpleNamespace(command={"find": "heads", "filter": {}}, command_name="find",
                              database_name="osmcloud_files", request_id=7, connection_id=address)
    listener.started(started)
    listener.succeeded(SimpleNamespace(request_id=7, connection_id=address))
    listener.started(SimpleNamespace(command={"insert": "versions"}, command_name="insert", database_name="db",
                                     request_id=8, connection_id=address))
    listener.failed(SimpleNamespace(request_id=8, connection_id=address,
                                    failure={"errmsg": "dup", "codeName": "DuplicateKey"}))
    find, insert = spans.get_finished_spans()
    assert find.name == "find heads" and find.kind == SpanKind.CLIENT
    assert find.attributes["db.collection.name"] == "heads" and find.attributes["db.namespace"] == "osmcloud_files"
    assert insert.status.is_ok is False and insert.attributes["error.type"] == "DuplicateKey"


def test_a_mongo_command_over_a_unix_socket_is_a_span_too(spans):
    """A socket path has no port (PyMongo's connection_id is (path, None)): the span is
    recorded without server.port rather than the listener failing on int(None)."""
    [listener] = tracing.mongo_listeners()
    address = ("/tmp/mongodb-27017.sock", None)
    listener.started(SimpleNamespace(command={"find": "heads"}, command_name="find", database_name="db",
                                     request_id=9, connection_id=address))
    listener.succeeded(SimpleNamespace(request_id=9, connection_id=address))
    [find] = spans.get_finished_spans()
    assert find.attributes["server.address"] == "/tmp/mongodb-27017.sock" and "server.port" not in find.attributes


async def test_off_by_default_nothing_is_recorded_or_added(monkeypatch):
    for variable in ("OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
                     "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(variable, raising=False)
    tracing.shutdown()
    assert tracing.configure("files", ServiceSettings()) is False and not tracing.enabled()
    with tracing.server_span("PUT", "/x", "/x", {}, REQUEST_ID) as span:
        entry = outbox_entry(_uploaded(), "t.")
    assert span is None and "traceparent" not in entry
    headers = {"event_id": "e", "request_id": "r"}
    assert tracing.ProducerSpans().headers("t.files", "u1", headers) is headers
    assert tracing.client_trace_configs() == [] and tracing.mongo_listeners() == []
    assert tracing.inject({}) == {}


def test_the_standard_variables_turn_it_on_and_unsupported_ones_are_refused(monkeypatch):
    def on(**env):
        for variable in ("OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
                         "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"):
            monkeypatch.delenv(variable, raising=False)
        for variable, value in env.items():
            monkeypatch.setenv(variable, value)
        s = ServiceSettings(gateway_secret="x" * 32)
        return tracing.wanted(sdk_disabled=s.otel_sdk_disabled, traces_exporter=s.otel_traces_exporter,
                              otlp_endpoint=s.otel_exporter_otlp_endpoint,
                              otlp_traces_endpoint=s.otel_exporter_otlp_traces_endpoint), s.startup_problems()

    assert on() == (False, [])
    assert on(OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318") == (True, [])
    assert on(OTEL_TRACES_EXPORTER="otlp") == (True, [])
    assert on(OTEL_TRACES_EXPORTER="none", OTEL_EXPORTER_OTLP_ENDPOINT="http://c:4318") == (False, [])
    assert on(OTEL_SDK_DISABLED="true", OTEL_TRACES_EXPORTER="otlp") == (False, [])
    wanted, problems = on(OTEL_TRACES_EXPORTER="jaeger")
    assert wanted and "OTEL_TRACES_EXPORTER" in problems[0] and "Collector" in problems[0]
    wanted, problems = on(OTEL_EXPORTER_OTLP_ENDPOINT="http://c:4317", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    assert wanted and "OTEL_EXPORTER_OTLP_PROTOCOL" in problems[0] and "http/protobuf" in problems[0]
