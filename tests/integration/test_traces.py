"""Traces on the real stack: files and trash restarted with the standard OTEL_* variables,
exporting OTLP over HTTP to a collector this test runs on loopback. One upload through the
gateway is one trace: its id is the X-Request-Id the client got back (nginx's request id),
and it holds files' request with its MongoDB and S3 calls and the relay's Kafka send, and
trash's consumer of the `file-uploaded` event (a child of that send: the context rode in the
Kafka headers beside the request id). (auth, traced too, would add its verify sub-request of
the same request: nginx sends it the same X-Request-Id; restarting it is left out for time.)

Spans reach the collector in batches some time after the work (the SDK's batch processor),
so the check waits for trash's span to arrive — bounded, never a fixed sleep. The services
are restarted without tracing afterwards, whatever happened."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from osmcloud_localstack.client import login
from osmcloud_localstack.testing import CannotControl

TRACED = ("files", "trash")
WAIT_SECONDS = 60
SERVER, PRODUCER, CONSUMER, CLIENT = (Span.SPAN_KIND_SERVER, Span.SPAN_KIND_PRODUCER, Span.SPAN_KIND_CONSUMER,
                                      Span.SPAN_KIND_CLIENT)


class Collector:
    """Receives OTLP/HTTP protobuf exports (POST /v1/traces) and keeps every span as a dict."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        self.arrived = asyncio.Condition()

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            service = next((a.value.string_value for a in resource_spans.resource.attributes
                            if a.key == "service.name"), "")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append({
                        "service": service, "name": span.name, "kind": span.kind,
                        "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                        "parent": span.parent_span_id.hex(),
                        "links": [(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                        "attributes": {a.key: a.value.string_value or a.value.int_value for a in span.attributes}})
        async with self.arrived:
            self.arrived.notify_all()
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    async def wait_for(self, what: str, found) -> list[dict]:
        """Waits until `found(spans)` is truthy (new exports wake it) and returns it."""
        async def until() -> list[dict]:
            async with self.arrived:
                while not (result := found(self.spans)):
                    await self.arrived.wait()
                return result
        try:
            return await asyncio.wait_for(until(), WAIT_SECONDS)
        except TimeoutError:
            names = sorted({(s["service"], s["name"]) for s in self.spans})
            raise AssertionError(f"no {what} within {WAIT_SECONDS} s; spans received: {names}") from None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def collector(stack) -> AsyncIterator[Collector]:
    """The collector, and files and trash running with traces exported to it."""
    sink = Collector()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", sink.receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
           "OTEL_BSP_SCHEDULE_DELAY": "200"}
    restarted: list[str] = []
    try:
        for service in TRACED:
            try:
                await asyncio.to_thread(stack.stop_service, service)
            except CannotControl as exc:
                pytest.skip(str(exc))
            restarted.append(service)
            await asyncio.to_thread(stack.start_service, service, env)
        yield sink
    finally:
        for service in restarted:  # back as every other test knows them: no traces
            await asyncio.to_thread(stack.stop_service, service)
            await asyncio.to_thread(stack.start_service, service)
        await runner.cleanup()


async def test_one_uploads_trace_spans_the_gateway_request_files_the_event_and_trashs_handler(
        stack, gateway, collector):
    me, _ = await login(gateway, stack.smtp_sink_url)
    assert (await me.call("POST", "/api/billing/start")).status == 201
    reply = await me.call("PUT", "/api/files/FAVOURITES/traced/home.gpx", data=b"<gpx>traced</gpx>",
                          params={"overwrite": "true"})
    assert reply.status == 201, reply
    # the gateway's request id (sent to auth's verify sub-request and to files) is the trace's id
    trace_id = next(v for k, v in reply.headers.items() if k.lower() == "x-request-id")
    topic = f"{stack.topic_prefix}files"

    def in_trace(spans: list[dict]) -> list[dict]:
        return [s for s in spans if s["trace_id"] == trace_id]

    def sends(spans: list[dict]) -> list[dict]:
        return [s for s in in_trace(spans) if s["service"] == "files" and s["kind"] == PRODUCER]

    def trash_consumed(spans: list[dict]) -> list[dict]:
        """trash's handling of this upload's file-uploaded: a child of files' send span, or,
        when one poll brought other traces' events too, a batch span linked to it."""
        ids = {s["span_id"] for s in sends(spans)}
        return [s for s in spans if s["service"] == "trash" and s["kind"] == CONSUMER
                and ((s["trace_id"] == trace_id and s["parent"] in ids)
                     or any(t == trace_id and i in ids for t, i in s["links"]))]

    [consumed, *_] = await collector.wait_for("trash consumer span continuing the upload's trace", trash_consumed)
    spans = in_trace(collector.spans)
    summary = sorted({(s["service"], s["name"]) for s in spans})
    print(f"\ntrace {trace_id}: {len(spans)} spans")
    for service, name in summary:
        print(f"  {service:6} {name}  x{sum(1 for s in spans if (s['service'], s['name']) == (service, name))}")

    request = [s for s in spans if s["service"] == "files" and s["kind"] == SERVER]
    assert [s["name"] for s in request] == ["PUT /api/files/{file_type}/{name}"], summary
    assert request[0]["parent"] == "" and request[0]["attributes"]["osmcloud.request_id"] == trace_id
    assert request[0]["attributes"]["http.response.status_code"] == 201
    # files' own calls inside the request: MongoDB and S3
    children = [s for s in spans if s["service"] == "files" and s["kind"] == CLIENT]
    assert any(s["name"].startswith("S3 ") for s in children), summary
    assert any(s["attributes"].get("db.system.name") == "mongodb" for s in children), summary
    # the relay's send of file-uploaded continues the request that recorded it
    uploaded_sends = [s for s in sends(collector.spans) if s["name"] == f"send {topic}"]
    assert uploaded_sends and all(s["parent"] == request[0]["span_id"] for s in uploaded_sends), summary
    assert consumed["name"] in ("process file-uploaded batch", f"process {topic}")
    assert consumed["attributes"]["osmcloud.event_type"] == "file-uploaded"
