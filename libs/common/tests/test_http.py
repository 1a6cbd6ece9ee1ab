from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from osmcloud_common.errors import Conflict
from osmcloud_common.http import add_readiness_check, create_app, identity


async def _client(app):
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def _app(secret=""):
    app = create_app("demo", gateway_secret=secret)

    async def whoami(request):
        who = identity(request)
        return web.json_response({"user": who.user_id, "device": who.device_id})

    async def conflict(request):
        raise Conflict("it moved", details={"head": "v2"})

    async def boom(request):
        raise RuntimeError("bug")

    app.router.add_get("/api/whoami", whoami)
    app.router.add_get("/api/conflict", conflict)
    app.router.add_get("/api/boom", boom)
    return app


async def test_health_metrics_and_readiness():
    app = _app()
    state = {"ok": False}

    async def check():
        return state["ok"]
    add_readiness_check(app, "mongo", check)
    client = await _client(app)
    try:
        assert (await client.get("/healthz")).status == 200
        not_ready = await client.get("/readyz")
        assert not_ready.status == 503 and (await not_ready.json())["checks"] == {"mongo": False}
        state["ok"] = True
        assert (await client.get("/readyz")).status == 200
        metrics = await (await client.get("/metrics")).text()
        assert "http_requests_total" in metrics
    finally:
        await client.close()


async def test_errors_are_json_with_a_code_and_never_leak_a_trace():
    client = await _client(_app())
    try:
        reply = await client.get("/api/conflict")
        assert reply.status == 409
        assert await reply.json() == {"error": {"code": "conflict", "message": "it moved", "head": "v2"}}
        missing = await client.get("/api/nothing-here")
        assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"
        boom = await client.get("/api/boom")
        body = await boom.json()
        assert boom.status == 500 and "bug" not in body["error"]["message"]
        assert (await client.get("/api/whoami")).status == 401
    finally:
        await client.close()


async def test_gateway_secret_is_required_when_configured():
    client = await _client(_app(secret="s3cret"))
    try:
        headers = {"X-User-Id": "u1", "X-Device-Id": "d1"}
        assert (await client.get("/api/whoami", headers=headers)).status == 401
        ok = await client.get("/api/whoami", headers={**headers, "X-Gateway-Secret": "s3cret"})
        assert ok.status == 200 and await ok.json() == {"user": "u1", "device": "d1"}
        assert (await client.get("/healthz")).status == 200
    finally:
        await client.close()


async def test_userdata_errors_are_in_osmands_shape_whatever_raised_them():
    """OsmAnd's apps read only {"error": {"errorCode", "message"}} with HTTP 400: a limit, a
    failure, an unknown route or a refusal meant for the native API never answers otherwise."""
    from osmcloud_common.errors import ApiError
    from osmcloud_common.osmand import TRY_LATER

    app = create_app("demo", gateway_secret="s3cret")

    async def limited(request):
        raise ApiError("a code was sent moments ago; ask again in 23 s", code="code_recently_sent", status=429,
                       details={"retry_after_seconds": 23})

    async def down(request):
        raise ApiError("authentication is unavailable right now", code="unavailable", status=503)

    async def boom(request):
        raise RuntimeError("bug")

    async def conflict(request):
        raise Conflict("it moved")

    for path, handler in (("limited", limited), ("down", down), ("boom", boom), ("conflict", conflict)):
        app.router.add_post(f"/userdata/{path}", handler)
    client = await _client(app)
    secret = {"X-Gateway-Secret": "s3cret"}
    try:
        async def answer(method, path, headers=secret):
            reply = await client.request(method, path, headers=headers)
            assert reply.status == 400 and reply.content_type == "application/json", (path, reply.status)
            error = (await reply.json())["error"]
            assert set(error) == {"errorCode", "message"}, error
            return error["errorCode"], error["message"]

        code, message = await answer("POST", "/userdata/limited")
        assert code == TRY_LATER and message.endswith("retry in 23 s"), message
        code, message = await answer("POST", "/userdata/down")
        assert code == TRY_LATER and "retry" in message
        code, message = await answer("POST", "/userdata/boom")
        assert code == TRY_LATER and "bug" not in message
        assert (await answer("POST", "/userdata/conflict"))[0] == 400
        # a method the route does not take: OsmAnd's body with HTTP's 405 and Allow
        wrong = await client.request("GET", "/userdata/limited", headers=secret)
        assert wrong.status == 405 and wrong.headers["Allow"] == "POST", wrong
        assert (await wrong.json())["error"]["errorCode"] == 405
        assert (await answer("GET", "/userdata/nothing-here"))[0] == 400
        assert (await answer("POST", "/userdata/limited", headers={}))[0] == 400  # no gateway secret
        metrics = await (await client.get("/metrics")).text()
        assert 'status="500"' in metrics  # still counted as the failure it was
    finally:
        await client.close()


async def test_a_limit_answers_429_with_retry_after():
    from osmcloud_common.errors import ApiError

    app = create_app("demo")

    async def limited(request):
        raise ApiError("two at once at most; ask again in 30 s", code="too_many", status=429,
                       details={"retry_after_seconds": 30})
    app.router.add_get("/api/limited", limited)
    client = await _client(app)
    try:
        reply = await client.get("/api/limited")
        assert reply.status == 429 and reply.headers["Retry-After"] == "30"
        assert (await reply.json())["error"]["code"] == "too_many"
    finally:
        await client.close()


async def test_a_failure_after_the_answer_started_cuts_the_connection_and_a_client_gone_is_no_fault():
    """An error cannot follow bytes already sent: the client sees an incomplete answer at once
    (never a hang, never an error document inside the body). A client that went away mid-answer
    is counted as 499, not as a 503 of a dependency."""
    import asyncio

    import aiohttp
    import pytest

    app = create_app("demo")
    go_on, ended = asyncio.Event(), asyncio.Event()

    async def cut(request):
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"the first part")
        raise ConnectionError("the blob store went away")

    async def slow(request):  # writes until its client is found gone
        response = web.StreamResponse()
        await response.prepare(request)
        await go_on.wait()
        try:
            while True:
                await response.write(b"x" * 65536)
        finally:
            ended.set()
    app.router.add_get("/api/cut", cut)
    app.router.add_get("/api/slow", slow)
    client = await _client(app)
    try:
        reply = await client.get("/api/cut")
        assert reply.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await reply.read()
        gone = await client.get("/api/slow")
        gone.close()
        go_on.set()
        await ended.wait()
        metrics = await (await client.get("/metrics")).text()
        assert 'route="/api/cut",status="503"' in metrics
        assert 'route="/api/slow",status="499"' in metrics and 'route="/api/slow",status="503"' not in metrics
    finally:
        await client.close()
