"""Read-your-writes (docs/adr/0004-read-your-writes.md): after a call that changes state answers
success, the same client's very next call — to any service, through either API — sees the
change. Every pair below is made back to back, with no sleep, poll or retry between the write
and the read, at least 50 times.

The accounts of this module sign up from their own loopback address (127.0.0.23), so their
~150 mailed codes count against neither the gateway's per-address code limit nor auth's
hourly cap of the address the rest of the suite uses."""

import asyncio
import contextlib
import functools
import gzip
import uuid
from datetime import datetime, timedelta

import aiohttp
import pytest

from osmcloud_localstack.client import GatewayClient, Reply, count_mails, eventually, login, read_code
from osmcloud_localstack.testing import advance_clock, events_of, service_now

LOOPS = 50
PARALLEL = 5  # accounts worked on at once (each account's pairs stay strictly in order)
SOURCE_ADDRESS = "127.0.0.23"
BOUNDARY = "CowMooCowMooCowCowCow"


@pytest.fixture
async def client(stack):
    connector = aiohttp.TCPConnector(local_addr=(SOURCE_ADDRESS, 0), limit=PARALLEL * 2)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield GatewayClient(session, stack.gateway_url)


@pytest.fixture
async def client_at(stack):
    """Clients of their own source addresses: many accounts are many people, and the gateway's
    per-address limits on codes and sign-up count each apart (one address for all fifty ran
    into them on a fast machine)."""
    async with contextlib.AsyncExitStack() as sessions:
        async def client(address: str) -> GatewayClient:
            connector = aiohttp.TCPConnector(local_addr=(address, 0))
            session = await sessions.enter_async_context(
                aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)))
            return GatewayClient(session, stack.gateway_url)
        yield client


async def each(count: int, work) -> list:
    """work(i) for i in range(count), PARALLEL at a time."""
    gate = asyncio.Semaphore(PARALLEL)

    async def one(i: int):
        async with gate:
            return await work(i)
    return await asyncio.gather(*(one(i) for i in range(count)))


async def put(me: GatewayClient, file_type: str, name: str, body: bytes = b"<gpx/>") -> Reply:
    return await me.call("PUT", f"/api/files/{file_type}/{name}", data=body, params={"overwrite": "true"})


# ---------------------------------------------------------------- OsmAnd's side
def _multipart(name: str, content: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{name}.gz\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + gzip.compress(content) + \
        f"\r\n--{BOUNDARY}--\r\n".encode()


async def _chunked(body: bytes):
    yield body  # a generator body: aiohttp sends it chunked, without Content-Length, as the app does


class Phone:
    """OsmAnd on a phone: its /userdata/ calls, parameter for parameter."""

    def __init__(self, gw: GatewayClient) -> None:
        self.gw, self.phone_id, self.device = gw.with_token(None), str(uuid.uuid4()), {}

    @property
    def creds(self) -> dict[str, str]:
        return {"deviceid": self.device["id"], "accessToken": self.device["accesstoken"]}

    async def sign_up(self, sink_url: str, email: str) -> "Phone":
        before = await count_mails(self.gw.session, sink_url, email)
        reply = await self.gw.call("POST", "/userdata/user-register", data={
            "email": email, "login": "false", "lang": "en", "deviceid": self.phone_id})
        assert reply.status == 200, reply
        code = await read_code(self.gw.session, sink_url, email, after=before)
        reply = await self.gw.call("POST", "/userdata/device-register", data={
            "email": email, "token": code, "deviceid": self.phone_id, "brand": "Google", "model": "Pixel",
            "lang": "en"})
        assert reply.status == 200, reply
        self.device = reply.body
        return self

    async def upload(self, file_type: str, name: str, content: bytes = b"<gpx/>") -> Reply:
        return await self.gw.call("POST", "/userdata/upload-file", params={
            **self.creds, "name": name, "type": file_type, "clienttime": "1700000000000", "autoSync": "false"},
            data=_chunked(_multipart(name, content)),
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})

    async def list_files(self) -> dict:
        reply = await self.gw.call("GET", "/userdata/list-files", params={**self.creds, "allVersions": "true"})
        assert reply.status == 200, reply
        return reply.body

    async def form(self, endpoint: str, **fields: str) -> Reply:
        return await self.gw.call("POST", f"/userdata/{endpoint}", params=self.creds, data=fields)


async def both_apis(client: GatewayClient, stack) -> tuple[GatewayClient, Phone]:
    """One account used through both APIs: signed up by OsmAnd, then logged in natively (a
    second code for the address is allowed 30 s after the first: the clock moves that far)."""
    email = f"ryw-{uuid.uuid4().hex[:12]}@example.test"
    phone = await Phone(client).sign_up(stack.smtp_sink_url, email)
    await advance_clock(stack, 31)
    me, _ = await login(client, stack.smtp_sink_url, email=email)
    return me, phone


def trash_names(page: dict) -> set[str]:
    return {item["name"] for month in page["months"] for item in month["items"]}


async def trash_item(me: GatewayClient, name: str) -> dict:
    page = (await me.call("GET", "/api/trash")).body
    return next(item for month in page["months"] for item in month["items"] if item["name"] == name)


# =============================================================================================
# plans: started, bought, renewed, renewed by the store → the upload the plan allows
# =============================================================================================
async def test_plan_changes_allow_the_very_next_upload(stack, client, client_at, receipts):
    """Start, a purchase, a renewal in grace and a store notification in grace, each followed at
    once by an upload only the new plan allows; the same 50 accounts go through all four."""
    accounts: list[dict] = [{} for _ in range(LOOPS)]

    async def start(i: int) -> None:
        me, _ = await login(await client_at(f"127.0.24.{i + 1}"), stack.smtp_sink_url)
        assert (await me.call("POST", "/api/billing/start")).status == 201
        reply = await put(me, "FAVOURITES", "first.gpx")
        assert reply.status == 201, reply  # was 403 no_plan: files had not heard of the plan yet
        accounts[i].update(me=me, order=f"GPA.{uuid.uuid4().hex[:12]}")
    await each(LOOPS, start)

    now = await service_now(stack)

    async def purchase(i: int, expires: datetime) -> None:
        a = accounts[i]
        reply = await a["me"].call("POST", "/api/billing/purchases", json={
            "platform": "sandbox", "product_id": "osmcloud.pro.monthly", "order_id": a["order"],
            "receipt": receipts.sign(a["order"], now, expires)})
        assert reply.status == 201, reply
        reply = await put(a["me"], "GPX", f"bought-{expires.timestamp():.0f}.gpx")
        assert reply.status == 201, reply  # a track: Pro only
    await each(LOOPS, lambda i: purchase(i, now + timedelta(hours=1)))

    async def in_grace(i: int) -> bool:  # the deadline job, not a client write: waited for
        usage = (await accounts[i]["me"].call("GET", "/api/files/usage")).body
        return usage["plan"] == "start"

    async def expire_all() -> None:
        await advance_clock(stack, 2 * 3600)
        for i in range(LOOPS):
            await eventually(functools.partial(in_grace, i), timeout=30, what=f"account {i} in grace")
        refused = await put(accounts[0]["me"], "GPX", "in-grace.gpx")
        assert refused.status == 403, refused  # grace follows Start's rules: what follows proves a change

    await expire_all()
    now = await service_now(stack)
    await each(LOOPS, lambda i: purchase(i, now + timedelta(hours=1)))  # a later receipt: renewal

    await expire_all()
    now = await service_now(stack)

    async def notified(i: int) -> None:
        a = accounts[i]
        reply = await client.call("POST", "/api/billing/notifications/sandbox", json={
            "receipt": receipts.sign(a["order"], now, now + timedelta(hours=1))})
        assert reply.status == 200 and reply.body["status"] == "applied", reply
        reply = await put(a["me"], "GPX", "notified.gpx")
        assert reply.status == 201, reply
    await each(LOOPS, notified)

    # logging out is immediate too: the device's very next call is refused
    async def logout(i: int) -> None:
        me = accounts[i]["me"]
        assert (await me.call("POST", "/api/auth/logout")).status in (200, 204)
        assert (await me.call("GET", "/api/files/usage")).status == 401
    await each(LOOPS, logout)


async def test_osmand_sign_up_then_upload_then_delete_account(stack, client, client_at):
    """The app's first backup right after signing up (was errorCode 102: no plan yet), and an
    account deletion refusing the device at once."""
    async def one(i: int) -> None:  # fifty phones: fifty people
        await sign_up_upload_delete(await client_at(f"127.0.23.{i + 1}"))

    async def sign_up_upload_delete(gateway: GatewayClient) -> None:
        email = f"ryw-{uuid.uuid4().hex[:12]}@example.test"
        phone = await Phone(gateway).sign_up(stack.smtp_sink_url, email)
        reply = await phone.upload("FAVOURITES", "favourites.gpx")
        assert reply.status == 200 and reply.body["status"] == "ok", reply
        before = await count_mails(client.session, stack.smtp_sink_url, email)
        reply = await phone.gw.call("POST", "/userdata/send-code", params=phone.creds,
                                    json={"email": email, "action": "delete", "lang": "en"})
        assert reply.status == 200, reply
        code = await read_code(client.session, stack.smtp_sink_url, email, after=before)
        reply = await phone.gw.call("POST", "/userdata/delete-account", params=phone.creds,
                                    json={"username": email, "password": None, "token": code})
        assert reply.status == 200, reply
        gone = await phone.gw.call("GET", "/userdata/list-files", params={**phone.creds, "allVersions": "true"})
        assert gone.status == 400 and gone.body["error"]["errorCode"] == 105, gone
    await each(LOOPS, one)


# =============================================================================================
# delete → trash page, list-files marker, usage; restore → live everywhere, out of the trash
# =============================================================================================
async def test_delete_and_restore_show_at_once_through_both_apis(stack, client):
    me, phone = await both_apis(client, stack)
    body = b"<gpx>" + b"x" * 100 + b"</gpx>"
    for i in range(LOOPS):
        name = f"d/{i}.gpx"
        assert (await put(me, "FAVOURITES", name, body)).status == 201
        used = (await me.call("GET", "/api/files/usage")).body["used_bytes"]
        if i % 2:  # OsmAnd's delete
            assert (await phone.form("delete-file", name=name, type="FAVOURITES")).status == 200
        else:
            assert (await me.call("DELETE", f"/api/files/FAVOURITES/{name}")).status == 200
        assert name in trash_names((await me.call("GET", "/api/trash")).body), f"loop {i}: not in the trash"
        assert name not in await native_names(me), f"loop {i}: still listed"
        listing = await phone.list_files()
        newest = next(f for f in listing["allFiles"] if f["name"] == name)
        assert newest["filesize"] < 0 and name not in {f["name"] for f in listing["uniqueFiles"]}, f"loop {i}"
        assert (await me.call("GET", "/api/files/usage")).body["used_bytes"] == used - len(body)

        if i % 2:  # OsmAnd's restore: the delete marker deleted as a version
            reply = await phone.form("delete-file-version", name=name, type="FAVOURITES",
                                     updatetime=str(newest["updatetimems"]))
            assert reply.status == 200, reply
        else:
            item = await trash_item(me, name)
            assert (await me.call("POST", f"/api/trash/items/{item['id']}/restore")).status == 200
        assert name not in trash_names((await me.call("GET", "/api/trash")).body), f"loop {i}: still in the trash"
        assert name in {f["name"] for f in (await me.call("GET", "/api/files")).body["files"]}
        assert name in {f["name"] for f in (await phone.list_files())["uniqueFiles"]}
        assert (await me.call("GET", "/api/files/usage")).body["used_bytes"] == used


async def test_upload_over_a_trashed_file_takes_it_out_of_the_trash(stack, client):
    """Also proves that no write to one file is lost without spacing between them (the outbox
    relay pulling published events from the head document while the next write lands): all
    150 versions are in the history and all their events in Kafka."""
    me, session = await login(client, stack.smtp_sink_url)
    assert (await me.call("POST", "/api/billing/start")).status == 201
    for i in range(LOOPS):
        assert (await put(me, "FAVOURITES", "again.gpx", f"v{i}".encode())).status == 201
        assert (await me.call("DELETE", "/api/files/FAVOURITES/again.gpx")).status == 200
        assert "again.gpx" in trash_names((await me.call("GET", "/api/trash")).body)
        assert (await put(me, "FAVOURITES", "again.gpx", b"back")).status == 201
        assert "again.gpx" not in trash_names((await me.call("GET", "/api/trash")).body), f"loop {i}"
    history = (await me.call("GET", "/api/files/history/FAVOURITES/again.gpx?limit=1000")).body["versions"]
    assert len(history) == 3 * LOOPS
    wanted = {"file-uploaded": 2 * LOOPS, "file-deleted": LOOPS}

    def complete(events: list[dict]) -> bool:
        return all(len({e["data"].get("version_id") or e["data"].get("tombstone_version_id")
                        for e in events if e["type"] == t}) >= n for t, n in wanted.items())
    events = await events_of(stack, "files", session["user_id"], types=set(wanted), until=complete, timeout=60)
    assert {v["version_id"] for v in history} == {e["data"].get("version_id") or e["data"]["tombstone_version_id"]
                                                 for e in events}


# =============================================================================================
# delete now, empty trash (both APIs), delete a type, delete all, prune → gone from every view
# =============================================================================================
async def native_names(me: GatewayClient) -> set[str]:
    """The names GET /api/files lists (a listing kept by the files process and caught up: the
    first call of a loop reads every head, later ones what changed)."""
    return {f["name"] for f in (await me.call("GET", "/api/files")).body["files"]}


async def gone_everywhere(me: GatewayClient, phone: Phone | None, file_type: str, name: str, loop: int) -> None:
    assert name not in await native_names(me), f"loop {loop}: still listed"
    history = await me.call("GET", f"/api/files/history/{file_type}/{name}")
    assert history.status == 404, f"loop {loop}: history still lists {history.body}"
    changes = (await me.call("GET", "/api/files/changes")).body
    assert not [c for c in changes["changes"] if c.get("name") == name], f"loop {loop}: changes feed"
    storage = (await me.call("GET", "/api/files/storage")).body
    assert next(t for t in storage["types"] if t["type"] == file_type)["file_count"] == 0
    assert (await me.call("GET", "/api/files/usage")).body["used_bytes"] == 0
    if phone is not None:
        assert name not in {f["name"] for f in (await phone.list_files())["allFiles"]}, f"loop {loop}: list-files"


async def test_delete_now_and_empty_trash_remove_everything_at_once(stack, client):
    me, phone = await both_apis(client, stack)
    for i in range(LOOPS):
        name = f"p/{i}.gpx"
        assert (await put(me, "FAVOURITES", name, b"one")).status == 201
        assert (await put(me, "FAVOURITES", name, b"two")).status == 201
        assert name in await native_names(me), f"loop {i}: not listed"
        assert (await me.call("DELETE", f"/api/files/FAVOURITES/{name}")).status == 200
        way = i % 3
        if way == 0:
            item = await trash_item(me, name)
            assert (await me.call("DELETE", f"/api/trash/items/{item['id']}")).status == 200
        elif way == 1:  # the delete's item was in the trash when it was emptied (its hand-over worked)
            emptied = await me.call("DELETE", "/api/trash")
            assert emptied.status == 200 and emptied.body["purged"] == 1, f"loop {i}: {emptied}"
        else:
            marker = next(f for f in (await phone.list_files())["allFiles"] if f["name"] == name)
            reply = await phone.gw.call("POST", "/userdata/empty-trash", params=phone.creds, json=[
                {"name": name, "type": "FAVOURITES", "updatetime": marker["updatetimems"]}])
            assert reply.status == 200 and reply.body["results"][0]["status"] == "deleted", reply
        await gone_everywhere(me, phone, "FAVOURITES", name, i)
        assert name not in trash_names((await me.call("GET", "/api/trash")).body)


async def test_delete_a_type_delete_all_and_prune_show_at_once(stack, client):
    me, phone = await both_apis(client, stack)
    for i in range(LOOPS):
        name = f"t/{i}.gpx"
        way = i % 3
        assert (await put(me, "OSM_NOTES", name, b"old")).status == 201
        assert (await put(me, "OSM_NOTES", name, b"new")).status == 201
        assert name in await native_names(me), f"loop {i}: not listed"
        if way == 0:  # delete a type: in the trash, marker listed, nothing counted
            assert (await me.call("DELETE", "/api/files/types/OSM_NOTES")).status == 200
            assert name in trash_names((await me.call("GET", "/api/trash")).body), f"loop {i}"
            newest = next(f for f in (await phone.list_files())["allFiles"] if f["name"] == name)
            assert newest["filesize"] < 0
            storage = (await me.call("GET", "/api/files/storage")).body
            assert next(t for t in storage["types"] if t["type"] == "OSM_NOTES")["file_count"] == 0
            assert (await me.call("GET", "/api/files/usage")).body["used_bytes"] == 0
            assert (await me.call("DELETE", "/api/trash")).status == 200
            await gone_everywhere(me, phone, "OSM_NOTES", name, i)
        elif way == 1:  # delete all my data
            assert (await me.call("DELETE", "/api/files")).status == 200
            await gone_everywhere(me, phone, "OSM_NOTES", name, i)
            assert trash_names((await me.call("GET", "/api/trash")).body) == set()
        else:  # prune: the old version goes from history, list-files and the feed
            versions = (await me.call("GET", f"/api/files/history/OSM_NOTES/{name}")).body["versions"]
            old = versions[-1]["version_id"]
            assert (await me.call("POST", "/api/files/prune")).status == 200
            history = (await me.call("GET", f"/api/files/history/OSM_NOTES/{name}")).body["versions"]
            assert [v["version_id"] for v in history] == [versions[0]["version_id"]], f"loop {i}"
            assert len([f for f in (await phone.list_files())["allFiles"] if f["name"] == name]) == 1
            changes = (await me.call("GET", "/api/files/changes")).body["changes"]
            assert old not in {c.get("version_id") for c in changes}
            assert (await me.call("DELETE", "/api/files")).status == 200  # a clean slate for the next loop


# =============================================================================================
# backup switched off → the next upload of that type is refused (and on again → accepted)
# =============================================================================================
async def test_backup_switch_applies_to_the_next_upload(stack, client):
    me, _ = await login(client, stack.smtp_sink_url)
    assert (await me.call("POST", "/api/billing/start")).status == 201
    for i in range(LOOPS):
        assert (await me.call("PUT", "/api/files/backup-types/PROFILE", json={"enabled": False})).status == 200
        refused = await put(me, "PROFILE", "car.json", b"{}")
        assert refused.status == 409 and refused.error_code() == "backup_disabled", f"loop {i}: {refused}"
        assert (await me.call("PUT", "/api/files/backup-types/PROFILE", json={"enabled": True})).status == 200
        assert (await put(me, "PROFILE", "car.json", b"{}")).status == 201, f"loop {i}"
