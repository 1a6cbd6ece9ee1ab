"""auth's internal answers for compat authentication and the numeric ids on /internal/verify,
on a fake store (the store itself is exercised by the integration suite)."""

import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from osmcloud_auth.domain import digest
from osmcloud_auth.osmand_compat import OsmandAccounts
from osmcloud_auth.routes import AuthRoutes
from osmcloud_auth.token_cache import TokenCache
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
    OsmandAccounts(FakeStore(), codes=None, accounts=None, deletion=None, orders=None).register(application)
    AuthRoutes(runtime.clock, FakeStore(), codes=None, accounts=None, deletion=None).register(application)
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



async def test_cached_verify_fails_once_the_revocation_drops_the_device():
    class RevocableStore(FakeStore):
        reads, revoked = 0, False

        async def device_by_token(self, token_digest):
            self.reads += 1
            return None if self.revoked else await super().device_by_token(token_digest)

    store = RevocableStore()
    cache = TokenCache(max_entries=10, lease_seconds=5, max_age_seconds=60, last_seen_every=timedelta(seconds=60))
    cache.registered(time.monotonic())
    application = create_app("auth")
    AuthRoutes(SimpleNamespace(now=lambda: NOW), store, None, None, None, cache).register(application)
    bearer = {"Authorization": "Bearer good"}
    async with TestClient(TestServer(application)) as client:
        for _ in range(3):
            assert (await client.get("/internal/verify", headers=bearer)).status == 200
        assert store.reads == 1, "after the first read the answer comes from memory"
        store.revoked = True
        cache.drop(device_ids=["d1"])  # what every revocation does in every replica before answering
        assert (await client.get("/internal/verify", headers=bearer)).status == 401
        assert store.reads == 2
