"""Zips at once (zip_slots.py, docs/backup-download.md "Zips at once"): the limiter on its own,
then through the routes on fakes, each download held open by an asyncio event in front of the
blob store (no sleeps): a zip over the account's or the process's limit is 429
too_many_downloads with Retry-After before any byte, and a slot comes back however its zip
ends - read to the end, the client gone mid-zip, S3 failing mid-stream."""

import asyncio
import io
import os
import zipfile
from contextlib import ExitStack, contextmanager

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_backup import accounts, put

from osmcloud_common.domain_errors import map_domain_errors
from osmcloud_common.http import create_app
from osmcloud_files.backup_routes import BackupRoutes
from osmcloud_files.errors import TooManyDownloads
from osmcloud_files.native_errors import api_error
from osmcloud_files.zip_slots import ZipSlots


# ---------------------------------------------------------------- the limiter
def test_an_account_gets_its_share_and_the_process_its_most():
    slots = ZipSlots(most=3, per_account=2)
    with ExitStack() as held:
        held.enter_context(slots.taken("u"))
        held.enter_context(slots.taken("u"))
        with pytest.raises(TooManyDownloads) as mine:
            held.enter_context(slots.taken("u"))
        assert mine.value.code == "too_many_downloads"
        assert mine.value.details == {"limit": "account", "max_downloads": 2, "retry_after_seconds": 30}
        assert "this account already has 2 zip downloads" in mine.value.message
        held.enter_context(slots.taken("v"))  # another account is not held back by u's share
        assert slots.in_flight == 3
        with pytest.raises(TooManyDownloads) as full:
            held.enter_context(slots.taken("w"))
        assert full.value.details == {"limit": "server", "max_downloads": 3, "retry_after_seconds": 10}
        assert "ask again in 10 s" in full.value.message
        assert slots.in_flight == 3  # a refusal takes nothing
    assert slots.in_flight == 0
    with slots.taken("w"), slots.taken("u"), slots.taken("u"):  # every slot was given back
        assert slots.in_flight == 3


def test_a_slot_comes_back_when_its_zip_fails():
    slots = ZipSlots(most=1, per_account=1)
    with pytest.raises(ConnectionError), slots.taken("u"):
        raise ConnectionError("S3 went away")
    with pytest.raises(asyncio.CancelledError), slots.taken("u"):
        raise asyncio.CancelledError
    assert slots.in_flight == 0
    with slots.taken("u"):
        assert slots.in_flight == 1


def test_limits_below_one_are_refused():
    for most, per_account in ((0, 1), (1, 0)):
        with pytest.raises(ValueError):
            ZipSlots(most, per_account)


# ---------------------------------------------------------------- through the routes
class HeldBlobs:
    """The fake blob store behind a gate: every read waits for `gate` (a zip is held open after
    its headers), then fails if `fail` is set (S3 gone mid-stream)."""

    def __init__(self, blobs) -> None:
        self.blobs, self.gate, self.fail = blobs, asyncio.Event(), False

    async def stream(self, key, offset=0, length=0, chunk_size=1024):
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("S3 went away")
        async for chunk in self.blobs.stream(key, offset, length, chunk_size):
            yield chunk


class WatchedSlots(ZipSlots):
    """ZipSlots that tell when a slot is given back (`returned`, set and replaced each time)."""

    def __init__(self, most: int, per_account: int) -> None:
        super().__init__(most, per_account)
        self.returned = asyncio.Event()

    @contextmanager
    def taken(self, user_id):
        try:
            with super().taken(user_id):
                yield
        finally:
            self.returned.set()


class ServedLikeRunApp(TestServer):
    """aiohttp's test server, but without cancelling a handler whose client went away (the
    test server's default): files runs under web.run_app, where a handler learns of it from
    its next write failing."""

    async def _make_runner(self, **kwargs):
        return await super()._make_runner(**{**kwargs, "handler_cancellation": False})


@pytest.fixture
async def zips():
    world, _ = await accounts()
    await put(world, "u", "FILE", "big.bin", os.urandom(1024 * 1024))  # streamed in 1 KiB chunks
    blobs, slots = HeldBlobs(world.blobs), WatchedSlots(most=3, per_account=2)
    app = create_app("files")
    map_domain_errors(app, api_error)
    BackupRoutes(world.process().store, blobs, world.clock, slots).register(app)
    client = TestClient(ServedLikeRunApp(app))
    await client.start_server()
    yield client, blobs, slots
    await client.close()


def as_user(user: str) -> dict[str, str]:
    return {"X-User-Id": user}


async def held(client, user: str) -> aiohttp.ClientResponse:
    """A backup whose answer has started (status and headers read: its slot is taken), its
    bytes waiting at the gate."""
    answer = await client.get("/api/files/backup", headers=as_user(user))
    assert answer.status == 200, await answer.text()
    return answer


async def refused(answer: aiohttp.ClientResponse, limit: str) -> dict:
    assert answer.status == 429, await answer.text()
    assert answer.headers["Content-Type"].startswith("application/json")
    error = (await answer.json())["error"]
    assert error["code"] == "too_many_downloads" and error["limit"] == limit, error
    assert answer.headers["Retry-After"] == str(error["retry_after_seconds"])
    return error


async def test_a_zip_over_a_limit_is_429_before_any_byte_and_the_next_starts_once_one_ends(zips):
    client, blobs, slots = zips
    first, second = await held(client, "u"), await held(client, "u")
    # u's third, by either route: the account's share (the chosen set's body is not even read)
    await refused(await client.get("/api/files/backup", headers=as_user("u")), "account")
    mine = await refused(await client.post("/api/files/download", headers=as_user("u"), data=b"not even json"),
                         "account")
    assert mine["max_downloads"] == 2 and mine["retry_after_seconds"] == 30
    # another account still gets the last slot; then the process is full for everyone
    third = await held(client, "v")
    full = await refused(await client.post("/api/files/download", headers=as_user("w"), json={"files": []}),
                         "server")
    assert full["max_downloads"] == 3 and "ask again in 10 s" in full["message"]
    assert slots.in_flight == 3

    blobs.gate.set()  # the held zips go on; one read to its end gives its slot back at once
    assert zipfile.ZipFile(io.BytesIO(await first.read())).namelist()[-1] == "manifest.json"
    empty = await client.post("/api/files/download", headers=as_user("w"), json={"files": []})
    assert empty.status == 200 and zipfile.ZipFile(io.BytesIO(await empty.read())).namelist() == ["manifest.json"]
    for answer in (second, third):
        await answer.read()
    assert slots.in_flight == 0


async def test_a_client_gone_mid_zip_gives_its_slot_back(zips):
    client, blobs, slots = zips
    slots.per_account = 1
    gone = await held(client, "u")
    await refused(await client.get("/api/files/backup", headers=as_user("u")), "account")
    slots.returned.clear()
    gone.close()  # the client goes away after the headers, the zip's MiB still to come
    blobs.gate.set()
    await slots.returned.wait()
    assert slots.in_flight == 0
    metrics = await (await client.get("/metrics")).text()  # ended by the disconnect, not sent whole
    assert 'route="/api/files/backup",status="499"' in metrics, metrics
    again = await client.get("/api/files/backup", headers=as_user("u"))
    assert again.status == 200 and "files/FILE/big.bin" in zipfile.ZipFile(io.BytesIO(await again.read())).namelist()


async def test_s3_failing_mid_zip_cuts_the_answer_and_gives_the_slot_back(zips):
    client, blobs, slots = zips
    slots.per_account = 1
    broken = await held(client, "u")
    slots.returned.clear()
    blobs.fail = True
    blobs.gate.set()
    with pytest.raises(aiohttp.ClientError):  # cut: never a zip that looks whole
        await broken.read()
    await slots.returned.wait()
    assert slots.in_flight == 0
    blobs.fail = False
    again = await client.get("/api/files/backup", headers=as_user("u"))
    assert again.status == 200 and "manifest.json" in zipfile.ZipFile(io.BytesIO(await again.read())).namelist()


async def test_a_client_that_stops_reading_is_cut_off_after_the_stall_time_and_gives_its_slot_back():
    """The client takes the headers and then nothing: once the sockets' buffers are full the
    zip's writes wait, and after the stall time the zip is cut off (499) and its slot given
    back - not held until the gateway's hour-long timeout."""
    world, _ = await accounts()
    await world.give_plan("u", {"plan": "pro", "quota_bytes": 100 * 1024 * 1024})
    await put(world, "u", "FILE", "huge.bin", os.urandom(24 * 1024 * 1024))  # more than loopback buffers hold
    slots = WatchedSlots(most=1, per_account=1)
    app = create_app("files")
    map_domain_errors(app, api_error)
    BackupRoutes(world.process().store, world.blobs, world.clock, slots, stall_seconds=0.5).register(app)
    client = TestClient(ServedLikeRunApp(app))
    await client.start_server()
    try:
        stalled = await held(client, "u")  # and never read
        await asyncio.wait_for(slots.returned.wait(), timeout=30)
        assert slots.in_flight == 0
        metrics = await (await client.get("/metrics")).text()
        assert 'route="/api/files/backup",status="499"' in metrics, metrics
        with pytest.raises(aiohttp.ClientError):  # what it reads now ends cut, never as a whole zip
            await stalled.read()
    finally:
        await client.close()
