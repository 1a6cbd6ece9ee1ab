"""auth's internal answers for compat authentication and the numeric ids on /internal/verify,
on a fake store (the store itself is exercised by the integration suite)."""

from datetime import UTC, datetime
from types import SimpleNamespace

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from osmcloud_auth.domain import digest
from osmcloud_auth.osmand_compat import OsmandAccounts
from osmcloud_auth.routes import AuthRoutes
from osmcloud_common.http import create_app

NOW = datetime(2026, 5, 1, tzinfo=UTC)
DEVICE = {"user_id": "u1", "device_id": "d1", "num": 7, "user_num": 3, "last_seen_at": NOW, "revoked_at": None}


class FakeStore:
    async def device_by_token(self, token_digest):
        return DEVICE if token_digest == digest("good") else None

    async def device_by_num_and_token(self, device_num, token_digest):
        device = await self.device_by_token(token_digest)
        return device if device is not None and device["num"] == device_num else None


def app() -> web.Application:
    runtime = SimpleNamespace(clock=SimpleNamespace(now=lambda: NOW))
    application = create_app("auth")
    OsmandAccounts(runtime, FakeStore(), codes=None, deletion=None, orders=None).register(application)
    AuthRoutes(runtime, FakeStore(), codes=None).register(application)
    return application


async def test_verify_device_answers_the_identity_or_401():
    async with TestClient(TestServer(app())) as client:
        reply = await client.get("/internal/verify-device", params={"deviceid": "7", "accessToken": "good"})
        assert reply.status == 200
        assert await reply.json() == {"user_id": "u1", "device_id": "d1", "user_num": 3, "device_num": 7}
        for params in ({"deviceid": "8", "accessToken": "good"}, {"deviceid": "7", "accessToken": "bad"},
                       {"deviceid": "x", "accessToken": "good"}, {}):
            assert (await client.get("/internal/verify-device", params=params)).status == 401, params


async def test_bearer_verify_also_gives_the_numeric_ids():
    async with TestClient(TestServer(app())) as client:
        reply = await client.get("/internal/verify", headers={"Authorization": "Bearer good"})
        assert reply.status == 200
        assert (reply.headers["X-User-Id"], reply.headers["X-Device-Id"]) == ("u1", "d1")
        assert (reply.headers["X-User-Num"], reply.headers["X-Device-Num"]) == ("3", "7")
