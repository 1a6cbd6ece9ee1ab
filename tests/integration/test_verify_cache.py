"""auth's verify cache with several replicas: a logout answered by one auth process makes the
token fail at once in every other one, although each answered it from memory before.

A second auth process runs on the same database (what `--scale auth=2` runs); the stack's own
auth answers the gateway."""

import re
import time
import uuid

import aiohttp
import pytest
from pymongo import AsyncMongoClient

from osmcloud_localstack.client import login
from osmcloud_localstack.testing import free_port, service_replica


async def metric(session: aiohttp.ClientSession, url: str, name: str) -> float:
    async with session.get(f"{url}/metrics") as reply:
        found = re.search(rf"^{name} ([\d.e+]+)$", await reply.text(), re.M)
    return float(found.group(1)) if found else 0.0


@pytest.fixture
async def second_auth(stack, tmp_path):
    """A second auth process, ready once it holds its verify-cache lease."""
    async def leased(session, url):
        return await metric(session, url, "verify_cache_usable") == 1
    async with service_replica(stack, "auth", tmp_path / "auth-2.log", leased) as url:
        yield url


async def verify(session, url: str, secret: str, token: str) -> int:
    async with session.get(f"{url}/internal/verify", headers={"X-Gateway-Secret": secret,
                                                              "Authorization": f"Bearer {token}"}) as reply:
        return reply.status


async def test_a_logout_through_one_replica_fails_the_token_at_once_in_another(stack, gateway, second_auth):
    async with aiohttp.ClientSession() as session:
        me, _ = await login(gateway, stack.smtp_sink_url)
        hits = await metric(session, second_auth, "verify_cache_hits_total")
        for _ in range(3):
            assert await verify(session, second_auth, stack.gateway_secret, me.token) == 200
        assert await metric(session, second_auth, "verify_cache_hits_total") >= hits + 2, \
            "the second replica answers the token from memory"

        assert (await me.call("POST", "/api/auth/logout")).status == 200  # answered by the stack's auth
        assert await verify(session, second_auth, stack.gateway_secret, me.token) == 401
        assert (await me.call("GET", "/api/files")).status == 401


async def registered_replicas(stack) -> list[str]:
    mongo = AsyncMongoClient(stack.mongo_url)
    try:
        return [r["url"] for r in await mongo[f"{stack.db_prefix}auth"]["verify_replicas"].find().to_list(None)]
    finally:
        await mongo.close()


async def test_a_logout_through_the_other_replica_fails_the_token_at_the_gateway(stack, gateway, second_auth):
    async with aiohttp.ClientSession() as session:
        others = [url for url in await registered_replicas(stack) if url != second_auth]
        hits = sum([await metric(session, url, "verify_cache_hits_total") for url in others])
        phone, _ = await login(gateway, stack.smtp_sink_url)
        for _ in range(3):
            assert (await phone.call("GET", "/api/files")).status == 200
        assert sum([await metric(session, url, "verify_cache_hits_total") for url in others]) >= hits + 2, \
            "the gateway's auth answers the token from memory"
        me = (await phone.call("GET", "/api/auth/account")).body
        device_id = next(d["id"] for d in me["devices"] if d["this_device"])
        async with session.post(f"{second_auth}/api/auth/logout", headers={
                "X-Gateway-Secret": stack.gateway_secret, "X-User-Id": me["user_id"],
                "X-Device-Id": device_id}) as reply:
            assert reply.status == 200
        assert (await phone.call("GET", "/api/files")).status == 401
        assert (await phone.call("GET", "/api/auth/account")).status == 401


async def test_an_unreachable_replica_is_fenced_and_the_logout_waits_out_its_lease(stack, gateway, second_auth):
    """A replica that cannot be told loses its registration; the logout answers only when that
    replica's lease has run out (so it can no longer serve what it held) — 5 s by default."""
    mongo = AsyncMongoClient(stack.mongo_url)
    replicas = mongo[f"{stack.db_prefix}auth"]["verify_replicas"]
    ghost = f"ghost-{uuid.uuid4().hex}"
    try:
        await replicas.insert_one({"_id": ghost, "url": f"http://127.0.0.1:{free_port()}"})
        me, _ = await login(gateway, stack.smtp_sink_url)
        started = time.monotonic()
        assert (await me.call("POST", "/api/auth/logout")).status == 200
        assert time.monotonic() - started >= 5.0
        assert await replicas.find_one({"_id": ghost}) is None
        assert (await me.call("GET", "/api/files")).status == 401
        again, _ = await login(gateway, stack.smtp_sink_url)
        started = time.monotonic()
        assert (await again.call("POST", "/api/auth/logout")).status == 200
        assert time.monotonic() - started < 5.0, "once fenced, the dead replica costs no more waits"
    finally:
        await replicas.delete_one({"_id": ghost})
        await mongo.close()
