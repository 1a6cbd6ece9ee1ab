"""The event loop's PUT of a small object (s3_small_put.py) against a stand-in S3 server: the
request S3 needs (path-style, SigV4 over the headers, UNSIGNED-PAYLOAD), and its failures as
the SDK's, so faults.py answers 503 / 507 as for the SDK's calls. The real S3 server (versitygw,
which checks the signature) takes every small upload of the integration tests."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from minio.error import S3Error, ServerError

from osmcloud_common.faults import DISK_FULL, BlobStoreUnreachable, unavailable_dependency
from osmcloud_common.s3_small_put import SmallPuts

ERROR = ("<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message>"
         "<Resource>/b/k</Resource><RequestId>r1</RequestId></Error>")


class S3Stub:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer: tuple[int, str] = (200, "")

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append({"method": request.method, "path": request.raw_path,
                              "headers": dict(request.headers), "body": await request.read()})
        status, text = self.answer
        return web.Response(status=status, text=text, content_type="application/xml")


@pytest.fixture
async def s3() -> AsyncIterator[tuple[S3Stub, SmallPuts]]:
    stub = S3Stub()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stub.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    puts = SmallPuts(f"127.0.0.1:{server.port}", "AKID", "secret", "bucket", False,
                     connect_timeout=1.0, read_timeout=5.0, connections=4)
    yield stub, puts
    await puts.close()
    await server.close()


async def test_a_put_is_path_style_signed_over_its_headers_with_the_body_unsigned(s3: Any) -> None:
    stub, puts = s3
    await puts.put("u1/v 1~x", b"hello", "application/octet-stream", "us-east-1")
    (request,) = stub.requests
    headers = request["headers"]
    assert request["method"] == "PUT" and request["path"] == "/bucket/u1/v%201~x" and request["body"] == b"hello"
    assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD" and headers["Content-Length"] == "5"
    auth = headers["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKID/") and "/us-east-1/s3/aws4_request" in auth
    assert "SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date" in auth


async def test_an_s3_error_answer_is_the_sdks_error_with_its_code(s3: Any) -> None:
    stub, puts = s3
    stub.answer = (507, ERROR.format(code="InsufficientStorage", message="disk full"))
    with pytest.raises(S3Error) as full:
        await puts.put("k", b"x", "application/octet-stream", "us-east-1")
    assert full.value.code == "InsufficientStorage" and unavailable_dependency(full.value) == DISK_FULL
    stub.answer = (403, ERROR.format(code="AccessDenied", message="no"))
    with pytest.raises(S3Error) as denied:
        await puts.put("k", b"x", "application/octet-stream", "us-east-1")
    assert denied.value.code == "AccessDenied" and unavailable_dependency(denied.value) is None
    stub.answer = (503, "busy")
    with pytest.raises(ServerError) as busy:
        await puts.put("k", b"x", "application/octet-stream", "us-east-1")
    assert unavailable_dependency(busy.value) == "blob store"


async def test_an_s3_that_cannot_be_reached_is_the_blob_store_away_after_one_retry() -> None:
    puts = SmallPuts("127.0.0.1:1", "AKID", "secret", "bucket", False,
                     connect_timeout=1.0, read_timeout=1.0, connections=1)
    try:
        with pytest.raises(BlobStoreUnreachable) as away:
            await puts.put("k", b"x", "application/octet-stream", "us-east-1")
    finally:
        await puts.close()
    assert unavailable_dependency(away.value) == "blob store"
