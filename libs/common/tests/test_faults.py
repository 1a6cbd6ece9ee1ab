"""A request that meets an unreachable dependency (database, blob store, Kafka, another service)
is answered 503 with JSON and Retry-After - never a 500 with a trace, never a hang."""

import asyncio
import errno

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from minio.error import S3Error, ServerError
from pymongo.errors import AutoReconnect, DuplicateKeyError, ServerSelectionTimeoutError
from urllib3.exceptions import MaxRetryError, ReadTimeoutError

from osmcloud_common.faults import unavailable_dependency
from osmcloud_common.http import READINESS_CHECK_SECONDS, add_readiness_check, create_app


def _s3_error(code: str) -> S3Error:
    return S3Error(None, code, "message", "/bucket/key", "rid", "hid")


class StorageWrapper(Exception):
    """A domain error raised from a driver's error (raise ... from ...)."""


def test_driver_errors_that_mean_away_are_recognised():
    assert unavailable_dependency(ServerSelectionTimeoutError("no servers")) == "database"
    assert unavailable_dependency(AutoReconnect("connection reset")) == "database"
    assert unavailable_dependency(MaxRetryError(None, "/bucket/key", reason=ConnectionRefusedError())) == "blob store"
    assert unavailable_dependency(ReadTimeoutError(None, "/bucket/key", "read timed out")) == "blob store"
    assert unavailable_dependency(ServerError("503 from S3", 503)) == "blob store"
    assert unavailable_dependency(_s3_error("ServiceUnavailable")) == "blob store"
    assert unavailable_dependency(OSError(errno.ENOSPC, "No space left on device")) == "storage (disk full)"
    assert unavailable_dependency(_s3_error("InsufficientStorage")) == "storage (disk full)"  # versitygw, disk full
    assert unavailable_dependency(aiohttp.ClientConnectorError(None, OSError(111, "refused"))) == "another service"
    try:
        try:
            raise AutoReconnect("gone")
        except AutoReconnect as inner:
            raise StorageWrapper("could not save") from inner
    except StorageWrapper as wrapped:
        assert unavailable_dependency(wrapped) == "database"


def test_errors_of_the_request_or_of_the_code_are_not_outages():
    assert unavailable_dependency(DuplicateKeyError("E11000")) is None
    assert unavailable_dependency(_s3_error("NoSuchKey")) is None
    assert unavailable_dependency(_s3_error("AccessDenied")) is None
    assert unavailable_dependency(RuntimeError("bug")) is None
    assert unavailable_dependency(KeyError("x")) is None


async def _client(app):
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def _failing_app():
    app = create_app("demo")

    async def mongo_down(request):
        raise ServerSelectionTimeoutError("127.0.0.1:27017: [Errno 111] Connection refused")

    async def s3_down(request):
        raise MaxRetryError(None, "/osmcloud-blobs/users/u/x", reason=ConnectionRefusedError(111, "refused"))

    async def bug(request):
        raise RuntimeError("bug")

    app.router.add_get("/api/mongo", mongo_down)
    app.router.add_post("/api/s3", s3_down)
    app.router.add_post("/userdata/upload-file", s3_down)
    app.router.add_get("/api/bug", bug)
    return app


async def test_a_dependency_away_answers_503_json_with_retry_after():
    client = await _client(_failing_app())
    try:
        for method, path, what in (("GET", "/api/mongo", "database"), ("POST", "/api/s3", "blob store")):
            reply = await client.request(method, path)
            assert reply.status == 503
            assert reply.headers["Retry-After"] == "5"
            body = await reply.json()
            assert body["error"]["code"] == "unavailable"
            assert what in body["error"]["message"] and "retry" in body["error"]["message"]
            assert "Traceback" not in await reply.text() and "Connection refused" not in await reply.text()
        metrics = await (await client.get("/metrics")).text()
        assert 'http_requests_total{method="GET",route="/api/mongo",status="503"} 1.0' in metrics
        # a bug is still a 500 (JSON, no trace)
        reply = await client.get("/api/bug")
        assert reply.status == 500 and (await reply.json())["error"]["code"] == "internal"
    finally:
        await client.close()


async def test_osmands_calls_get_try_later_while_a_dependency_is_away():
    client = await _client(_failing_app())
    try:
        reply = await client.post("/userdata/upload-file")
        assert reply.status == 400  # the protocol answers every error with 400 and an errorCode
        body = await reply.json()
        assert body["error"]["errorCode"] == 6 and "retry in 5 s" in body["error"]["message"]
        assert reply.headers["Retry-After"] == "5"
    finally:
        await client.close()


async def test_a_readiness_check_that_hangs_fails_in_bounded_time():
    app = create_app("demo")

    async def hangs():
        await asyncio.sleep(3600)
        return True

    async def fine():
        return True
    add_readiness_check(app, "s3", hangs)
    add_readiness_check(app, "mongo", fine)
    client = await _client(app)
    try:
        started = asyncio.get_running_loop().time()
        reply = await client.get("/readyz")
        assert asyncio.get_running_loop().time() - started < READINESS_CHECK_SECONDS + 2
        assert reply.status == 503
        assert await reply.json() == {"ready": False, "checks": {"s3": False, "mongo": True}}
    finally:
        await client.close()


async def test_a_replica_that_is_setting_up_answers_503_at_once():
    state = {"set_up": False}
    app = create_app("demo", serving=lambda: state["set_up"])

    async def hello(request):
        return web.json_response({"hello": True})
    app.router.add_get("/api/hello", hello)
    app.router.add_get("/userdata/list-files", hello)
    client = await _client(app)
    try:
        reply = await client.get("/api/hello")
        assert reply.status == 503 and reply.headers["Retry-After"] == "1"
        assert (await reply.json())["error"]["code"] == "unavailable"
        osmand = await client.get("/userdata/list-files")
        assert osmand.status == 400 and (await osmand.json())["error"]["errorCode"] == 6
        assert (await client.get("/healthz")).status == 200  # alive, and says so
        state["set_up"] = True
        assert (await client.get("/api/hello")).status == 200
    finally:
        await client.close()


async def test_an_s3_server_that_never_answers_fails_a_blob_write_in_bounded_time():
    """A slow dependency: connections are accepted, no answer comes. The S3 SDK's own client
    would wait 5 minutes per try; ours gives up after the read timeout."""
    from osmcloud_common.blobstore import BlobStore

    held: list[asyncio.StreamWriter] = []

    async def silent(_reader, writer):
        held.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = BlobStore(f"127.0.0.1:{port}", "access-key", "secret-key-secret", "bucket",
                      connect_timeout=0.5, read_timeout=0.5)
    body = [b"some bytes", b""]

    async def read(n):
        return body.pop(0)
    started = asyncio.get_running_loop().time()
    try:
        try:
            await store.put_stream("users/u/v", read)
        except Exception as exc:  # noqa: BLE001 - what matters is which, and when
            failure = exc
        else:
            raise AssertionError("a write to a silent S3 server succeeded")
        took = asyncio.get_running_loop().time() - started
        assert unavailable_dependency(failure) == "blob store", repr(failure)
        assert took < 5, f"took {took:.1f} s"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
