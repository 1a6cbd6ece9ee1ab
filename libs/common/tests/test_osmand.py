"""The compat helper for files and trash: credentials from the query or a form body, checked
by asking auth every time; auth's 401 becomes the protocol's 105."""

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from osmcloud_common.http import create_app
from osmcloud_common.osmand import TRY_LATER, CompatAuthenticator, ErrorCode, OsmandError

SECRET = "s3cret"


def fake_auth(calls: list) -> web.Application:
    async def verify_device(request: web.Request) -> web.Response:
        calls.append(dict(request.query))
        if request.headers.get("X-Gateway-Secret") != SECRET:
            return web.json_response({}, status=401)
        if request.query.get("deviceid") == "7" and request.query.get("accessToken") == "good":
            return web.json_response({"user_id": "u1", "device_id": "d1", "user_num": 3, "device_num": 7})
        return web.json_response({}, status=401)
    app = web.Application()
    app.router.add_get("/internal/verify-device", verify_device)
    return app


async def test_query_and_form_credentials_are_checked_by_auth_each_time():
    calls: list = []
    async with TestServer(fake_auth(calls)) as auth_server, aiohttp.ClientSession() as session:
        authenticator = CompatAuthenticator(session, str(auth_server.make_url("")), SECRET)

        async def whoami(request: web.Request) -> web.Response:
            who = await authenticator.authenticate(request)
            return web.json_response(who.to_json())
        service = create_app("files")
        service.router.add_route("*", "/userdata/whoami", whoami)
        async with TestClient(TestServer(service)) as client:
            reply = await client.get("/userdata/whoami", params={"deviceid": "7", "accessToken": "good"})
            assert reply.status == 200 and (await reply.json())["user_num"] == 3
            reply = await client.post("/userdata/whoami", data={"deviceid": "7", "accessToken": "good", "name": "x"})
            assert reply.status == 200 and (await reply.json())["device_num"] == 7
            reply = await client.post("/userdata/whoami", data={"deviceid": "7", "accessToken": "bad"})
            assert reply.status == 400
            body = await reply.json()
            assert body == {"error": {"errorCode": 105, "message": body["error"]["message"]}}
            reply = await client.get("/userdata/whoami")
            assert (await reply.json())["error"]["errorCode"] == 105
        assert len(calls) == 3  # no cache: every call asked auth; a missing credential never did


async def test_auth_unreachable_is_try_later_not_105():
    """105 would log the app out; an outage answers the apps' own "try later" (6), in the
    protocol's shape."""
    async with aiohttp.ClientSession() as session:
        authenticator = CompatAuthenticator(session, "http://127.0.0.1:9", SECRET)
        service = create_app("trash")

        async def whoami(request: web.Request) -> web.Response:
            await authenticator.authenticate(request)
            return web.json_response({})
        service.router.add_get("/userdata/whoami", whoami)
        async with TestClient(TestServer(service)) as client:
            reply = await client.get("/userdata/whoami", params={"deviceid": "7", "accessToken": "good"})
            assert reply.status == 400
            assert (await reply.json())["error"]["errorCode"] == TRY_LATER


def test_error_shape():
    error = OsmandError(ErrorCode.SIZE_EXCEEDED, "Maximum size of OsmAnd Cloud exceeded 5.")
    assert error.status == 400
    assert error.body() == {"error": {"errorCode": 108, "message": "Maximum size of OsmAnd Cloud exceeded 5."}}
    assert [int(c) for c in ErrorCode] == list(range(101, 112))


async def test_authenticate_query_never_reads_the_body():
    """upload-file streams its multipart body: credentials come from the query only."""
    calls: list = []
    async with TestServer(fake_auth(calls)) as auth_server, aiohttp.ClientSession() as session:
        authenticator = CompatAuthenticator(session, str(auth_server.make_url("")), SECRET)

        async def upload(request: web.Request) -> web.Response:
            who = await authenticator.authenticate_query(request)
            body = await request.read()  # still all there
            return web.json_response({"device_num": who.device_num, "body": len(body)})
        service = create_app("files")
        service.router.add_post("/userdata/upload", upload)
        async with TestClient(TestServer(service)) as client:
            reply = await client.post("/userdata/upload", params={"deviceid": "7", "accessToken": "good"},
                                      data={"deviceid": "7", "accessToken": "bad", "x": "y" * 1000})
            assert reply.status == 200 and (await reply.json())["device_num"] == 7
            assert (await reply.json())["body"] > 1000
            reply = await client.post("/userdata/upload", data={"deviceid": "7", "accessToken": "good"})
            assert (await reply.json())["error"]["errorCode"] == 105  # form credentials are not looked at
