"""Tenancy: one account can neither read nor change another's data, on either API.

Two users, A and B, both signed up the way OsmAnd's app does it (so each has a device token
that works on /userdata/ and as the native bearer token). A owns files with several
versions, a trashed file, devices, a Pro order, a deletion code and a changes cursor. Then B
calls EVERY operation of docs/openapi.yaml — the native routes and OsmAnd's /userdata/
endpoints alike — naming A's ids wherever the operation takes one (file names and types,
version ids and updatetimes, trash item ids and entries, device ids and numbers, order ids
and receipts, cursors, codes, A's e-mail). Each call must be refused or not found, or act on
B's own data only; no answer to B may carry any of A's identifiers that B did not send; and
A's listings, history, trash, devices, billing, protocol views and blobs are the same, byte
for byte, afterwards.

The cases are keyed by the operations of docs/openapi.yaml: a route added to the file
without a case here fails `test_every_documented_operation_has_a_tenancy_case`."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import re
import uuid
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from minio import Minio

from osmcloud_localstack.client import (
    GatewayClient,
    Reply,
    bulk_body,
    count_mails,
    eventually,
    login,
    osmand_sign_up,
    read_code,
)
from osmcloud_localstack.testing import advance_clock, service_now

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "patch")
PRO_PRODUCT = "osmcloud.pro.monthly"


def documented_operations() -> set[tuple[str, str]]:
    paths = yaml.safe_load(SPEC.read_text())["paths"]
    return {(method.upper(), path) for path, item in paths.items() for method in item if method in METHODS}


# ---------------------------------------------------------------------------------------------
# the two users
# ---------------------------------------------------------------------------------------------

@dataclass
class User:
    email: str
    app: dict                       # device-register's answer: id (device number), accesstoken, ...
    api: GatewayClient              # the native API with the device token
    user_id: str = ""
    device_ids: list[str] = field(default_factory=list)
    native: GatewayClient | None = None   # a second device, logged in through the native API

    def creds(self, deviceid: str | None = None) -> dict[str, str]:
        return {"deviceid": deviceid or self.app["id"], "accessToken": self.app["accesstoken"]}


async def sign_up(stack, gateway: GatewayClient, email: str) -> User:
    """An account signed up the way OsmAnd's app does it; billing gives it Start."""
    api, device = await osmand_sign_up(gateway, stack.smtp_sink_url, email)
    user = User(email, device, api)
    account = (await user.api.call("GET", "/api/auth/account")).body
    user.user_id, user.device_ids = account["user_id"], [d["id"] for d in account["devices"]]

    async def start_known():
        return (await user.api.call("GET", "/api/files/usage")).body.get("plan") == "start"
    await eventually(start_known, what=f"files learning the Start plan of {email}")
    return user


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


async def upload_osmand(user: User, file_type: str, name: str, data: bytes) -> Reply:
    boundary = "CowMooCowMooCowCowCow"
    body = (f"--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{name}.gz\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + gz(data) + f"\r\n--{boundary}--\r\n".encode()
    return await user.api.with_token(None).call(
        "POST", "/userdata/upload-file", data=body,
        params={**user.creds(), "name": name, "type": file_type, "clienttime": "1700000000000"},
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})


@dataclass
class World:
    """A's ids, and what B is allowed to see of them (nothing)."""
    stack: Any
    a: User
    b: User
    track: str = ""                 # GPX/<track>: two versions, live
    fav: str = ""                   # FAVOURITES/<fav>: deleted (in the trash)
    versions: dict[str, list[dict]] = field(default_factory=dict)   # "TYPE/name" -> native history
    trash_item: dict = field(default_factory=dict)
    order_id: str = ""
    receipt: str = ""
    cursor: str = ""
    deletion_code: str = ""

    def markers(self) -> set[str]:
        """A's identifiers: none may appear in an answer to B unless B sent it. (Not the track's
        name: B has a file of that name too. Not the integer ids: short numbers occur anywhere.)"""
        found = {self.a.user_id, self.a.email, self.a.app["accesstoken"],
                 self.fav, self.order_id, self.trash_item["id"], *self.a.device_ids}
        for history in self.versions.values():
            found.update(v["version_id"] for v in history)
        return {m for m in found if m}


async def build_world(stack, gateway: GatewayClient, receipts) -> World:
    tag = uuid.uuid4().hex[:10]
    a = await sign_up(stack, gateway, f"tenant-a-{tag}@example.test")
    b = await sign_up(stack, gateway, f"tenant-b-{tag}@example.test")
    world = World(stack, a, b, track=f"rides/a-track-{tag}.gpx", fav=f"a-favs-{tag}.gpx")

    # A buys Pro (an order B will try to take; Start would allow no GPX), then stores a track
    # with two versions (native, then OsmAnd) and a favourites file it deletes (the trash)
    now = await service_now(stack)
    world.order_id = f"GPA.tenant-a-{tag}"
    world.receipt = receipts.sign(world.order_id, now, now + timedelta(days=30))
    reply = await a.api.call("POST", "/api/billing/purchases", json={
        "platform": "sandbox", "product_id": PRO_PRODUCT, "order_id": world.order_id, "receipt": world.receipt})
    assert reply.status == 201, reply

    async def pro_known():
        return (await a.api.call("GET", "/api/files/usage")).body.get("plan") == "pro"
    await eventually(pro_known, what="files learning A's Pro plan")

    reply = await a.api.call("PUT", f"/api/files/GPX/{world.track}", data=b"<gpx>A one</gpx>")
    assert reply.status == 201, reply
    assert (await upload_osmand(a, "GPX", world.track, b"<gpx>A two</gpx>")).status == 200
    reply = await a.api.call("PUT", f"/api/files/FAVOURITES/{world.fav}", data=b"<gpx>A favs</gpx>")
    assert reply.status == 201, reply
    reply = await a.api.call("DELETE", f"/api/files/FAVOURITES/{world.fav}")
    assert reply.status == 200, reply

    async def in_trash():
        body = (await a.api.call("GET", "/api/trash")).body
        items = [i for month in body["months"] for i in month["items"] if i["name"] == world.fav]
        return items[0] if items and items[0].get("tombstone_update_ms") else None
    world.trash_item = await eventually(in_trash, timeout=60, what="A's deleted file in A's trash")
    for ref in (f"GPX/{world.track}", f"FAVOURITES/{world.fav}"):
        world.versions[ref] = (await a.api.call("GET", f"/api/files/history/{ref}")).body["versions"]
    world.cursor = (await a.api.call("GET", "/api/files/changes", params={"limit": "1"})).body["cursor"]

    # A asks for an account-deletion code (B will try to use it)
    before = await count_mails(a.api.session, stack.smtp_sink_url, a.email)
    assert (await a.api.call("POST", "/api/auth/account/deletion-codes")).status == 202
    world.deletion_code = await read_code(a.api.session, stack.smtp_sink_url, a.email, after=before)

    # B owns a file of the same type and name as A's track: a version id or updatetime of A's
    # must not reach A's bytes through B's file
    await b.api.call("POST", "/api/billing/start")
    b_now = await service_now(stack)
    b_order = f"GPA.tenant-b-{tag}"
    reply = await b.api.call("POST", "/api/billing/purchases", json={
        "platform": "sandbox", "product_id": PRO_PRODUCT, "order_id": b_order,
        "receipt": receipts.sign(b_order, b_now, b_now + timedelta(days=30))})
    assert reply.status == 201, reply

    async def b_pro():
        return (await b.api.call("GET", "/api/files/usage")).body.get("plan") == "pro"
    await eventually(b_pro, what="files learning B's Pro plan")
    reply = await b.api.call("PUT", f"/api/files/GPX/{world.track}", data=b"<gpx>B</gpx>")
    assert reply.status == 201, reply
    # and a second device (native login; a new code for the same address needs the resend pause)
    await advance_clock(stack, 31)
    b.native, _ = await login(gateway, stack.smtp_sink_url, email=b.email)
    return world


# ---------------------------------------------------------------------------------------------
# what A has, as A and the bucket see it
# ---------------------------------------------------------------------------------------------

def _without_last_seen(body: dict) -> dict:
    """A's own snapshot calls refresh last_seen_at (once a minute): the one field left out."""
    return {**body, "devices": [{k: v for k, v in d.items() if k != "last_seen_at"} for d in body["devices"]]}


async def snapshot(world: World) -> dict[str, Any]:
    a, api = world.a, world.a.api
    shot: dict[str, Any] = {}
    for path in ("/api/files", "/api/files/usage", "/api/files/storage", "/api/files/backup-types", "/api/trash",
                 "/api/billing/account"):
        reply = await api.call("GET", path)
        assert reply.status == 200, (path, reply)
        shot[path] = reply.body
    for path in ("/api/auth/account", "/api/auth/devices"):
        shot[path] = _without_last_seen((await api.call("GET", path)).body)
    changes, cursor = [], None
    while True:
        body = (await api.call("GET", "/api/files/changes",
                               params={"limit": "1000", **({"cursor": cursor} if cursor else {})})).body
        changes += body["changes"]
        cursor = body["cursor"]
        if not body["more"]:
            break
    shot["changes"] = changes
    for ref in world.versions:
        history = (await api.call("GET", f"/api/files/history/{ref}")).body
        shot[f"history {ref}"] = history
        for version in history["versions"]:
            if not version["deleted"]:
                reply = await api.call("GET", f"/api/files/{ref}", params={"version": version["version_id"]})
                shot[f"bytes {ref} {version['version_id']}"] = (reply.status, hashlib.sha256(reply.body).hexdigest())
    anon = api.with_token(None)
    listing = (await anon.call("GET", "/userdata/list-files", params={**a.creds(), "allVersions": "true"})).body
    shot["list-files"] = listing
    shot["user-validate-sub"] = (await anon.call("GET", "/userdata/user-validate-sub", params=a.creds())).body
    for entry in listing["allFiles"]:
        if entry["filesize"] >= 0:
            reply = await anon.call("GET", "/userdata/download-file", params={
                **a.creds(), "name": entry["name"], "type": entry["type"], "updatetime": str(entry["updatetimems"])},
                headers={"Accept-Encoding": "identity"})
            shot[f"download-file {entry['type']}/{entry['name']} {entry['updatetimems']}"] = (
                reply.status, hashlib.sha256(reply.body if isinstance(reply.body, bytes) else b"").hexdigest())
    shot["blobs"] = await blobs_of(world.stack, a.user_id)
    return shot


async def blobs_of(stack, user_id: str) -> dict[str, str]:
    """Every object of the user in the bucket, with the SHA-256 of its bytes."""
    s3 = Minio(stack.s3_endpoint, access_key=stack.s3_access_key, secret_key=stack.s3_secret_key,
               secure=stack.s3_secure)

    def read() -> dict[str, str]:
        found = {}
        for obj in s3.list_objects(stack.s3_bucket, prefix=f"users/{user_id}/", recursive=True):
            response = s3.get_object(stack.s3_bucket, obj.object_name)
            try:
                found[obj.object_name] = hashlib.sha256(response.read()).hexdigest()
            finally:
                response.close()
                response.release_conn()
        return found
    return await asyncio.to_thread(read)


# ---------------------------------------------------------------------------------------------
# B's calls, one case per documented operation
# ---------------------------------------------------------------------------------------------

REFUSED = {401, 403, 404, 409}          # native refusals; 400 only where the case says so
Case = Callable[[World], Awaitable[list["Outcome"]]]
CASES: dict[tuple[str, str], Case] = {}
# B's calls that change B's own data or end B's session, run last in this order (so the calls
# before them find B's file of the same name as A's track, and B's devices)
LAST = ("PUT /api/files/backup-types/{file_type}", "POST /api/files/prune", "DELETE /api/files/types/{file_type}",
        "DELETE /api/trash", "DELETE /api/files", "POST /api/auth/logout", "POST /userdata/delete-account")


@dataclass
class Outcome:
    what: str
    reply: Reply
    sent: str                       # everything B put in the request (A's ids it may see echoed)
    allowed: set[int]               # statuses that mean "refused", "not found" or "only B's own data"
    osmand_codes: set[int] = field(default_factory=set)   # for a 400 from /userdata/: the errorCodes allowed


def case(method: str, path: str):
    def register(fn: Case) -> Case:
        CASES[(method, path)] = fn
        return fn
    return register


async def call(client: GatewayClient, what: str, method: str, path: str, allowed: set[int],
               osmand_codes: set[int] | None = None, **kwargs) -> Outcome:
    reply = await client.call(method, path, **kwargs)
    sent = path + json.dumps({k: v for k, v in kwargs.items() if k != "data" or not isinstance(v, bytes)},
                             default=str)
    if isinstance(kwargs.get("data"), bytes):
        sent += kwargs["data"].decode("latin-1")
    return Outcome(what, reply, sent, allowed, osmand_codes or set())


def a_ref(world: World) -> tuple[str, str, dict, dict]:
    """A's track: its newest and its first version."""
    history = world.versions[f"GPX/{world.track}"]
    return "GPX", world.track, history[0], history[-1]


# ---- auth
@case("POST", "/api/auth/login-codes")
async def _(w: World):
    # a login code for A's address goes to A's inbox, never to B
    return [await call(w.b.api.with_token(None), "a login code for A's e-mail", "POST", "/api/auth/login-codes",
                       {202, 429}, json={"email": w.a.email})]


@case("POST", "/api/auth/sessions")
async def _(w: World):
    return [await call(w.b.api.with_token(None), "A's e-mail with A's deletion code as a login code", "POST",
                       "/api/auth/sessions", {400, 429}, json={"email": w.a.email, "code": w.deletion_code})]


@case("POST", "/api/auth/browser-sessions")
async def _(w: World):
    return [await call(w.b.api.with_token(None), "a browser session for A's e-mail with A's deletion code", "POST",
                       "/api/auth/browser-sessions", {400, 429},
                       json={"email": w.a.email, "code": w.deletion_code, "browser": "B's browser"})]


@case("GET", "/api/auth/account")
async def _(w: World):
    return [await call(w.b.api, "B's account page", "GET", "/api/auth/account", {200},
                       headers={"X-User-Id": w.a.user_id, "X-Device-Id": w.a.device_ids[0]})]


@case("GET", "/api/auth/devices")
async def _(w: World):
    return [await call(w.b.api, "B's devices, with A's identity headers", "GET", "/api/auth/devices", {200},
                       headers={"X-User-Id": w.a.user_id, "X-User-Num": w.a.app["userid"]})]


@case("DELETE", "/api/auth/devices/{device_id}")
async def _(w: World):
    return [await call(w.b.api, f"log out A's device {d}", "DELETE", f"/api/auth/devices/{d}", {404})
            for d in w.a.device_ids]


@case("POST", "/api/auth/logout")
async def _(w: World):
    return [await call(w.b.native, "log out B's native device, naming A's identity", "POST", "/api/auth/logout", {200},
                       headers={"X-User-Id": w.a.user_id, "X-Device-Id": w.a.device_ids[0]})]


@case("POST", "/api/auth/account/deletion-codes")
async def _(w: World):
    return [await call(w.b.api, "a deletion code, naming A's identity", "POST", "/api/auth/account/deletion-codes",
                       {202, 429}, headers={"X-User-Id": w.a.user_id}, json={"email": w.a.email})]


@case("POST", "/api/auth/account/delete")
async def _(w: World):
    return [await call(w.b.api, "delete with A's deletion code", "POST", "/api/auth/account/delete", {400},
                       json={"code": w.deletion_code})]


# ---- files
@case("GET", "/api/files")
async def _(w: World):
    return [await call(w.b.api, "B's files, with A's identity header", "GET", "/api/files", {200},
                       params={"types": "GPX,FAVOURITES"}, headers={"X-User-Id": w.a.user_id})]


@case("DELETE", "/api/files")
async def _(w: World):
    return [await call(w.b.api, "delete all of B's data", "DELETE", "/api/files", {200, 409},
                       headers={"X-User-Id": w.a.user_id})]


@case("GET", "/api/files/usage")
async def _(w: World):
    return [await call(w.b.api, "B's usage", "GET", "/api/files/usage", {200}, headers={"X-User-Id": w.a.user_id})]


@case("GET", "/api/files/storage")
async def _(w: World):
    return [await call(w.b.api, "B's storage page", "GET", "/api/files/storage", {200},
                       headers={"X-User-Id": w.a.user_id})]


@case("GET", "/api/files/backup-types")
async def _(w: World):
    return [await call(w.b.api, "B's backup switches", "GET", "/api/files/backup-types", {200},
                       headers={"X-User-Id": w.a.user_id})]


@case("PUT", "/api/files/backup-types/{file_type}")
async def _(w: World):
    return [await call(w.b.api, "switch GPX backup off (B's switch)", "PUT", "/api/files/backup-types/GPX", {200},
                       json={"enabled": False}, headers={"X-User-Id": w.a.user_id})]


@case("POST", "/api/files/prune")
async def _(w: World):
    return [await call(w.b.api, "prune (B's versions)", "POST", "/api/files/prune", {200}, params={"type": "GPX"},
                       headers={"X-User-Id": w.a.user_id})]


@case("DELETE", "/api/files/types/{file_type}")
async def _(w: World):
    return [await call(w.b.api, "delete the FAVOURITES type (B's)", "DELETE", "/api/files/types/FAVOURITES",
                       {200}, headers={"X-User-Id": w.a.user_id})]


@case("GET", "/api/files/changes")
async def _(w: World):
    return [await call(w.b.api, "changes after A's cursor", "GET", "/api/files/changes", {200},
                       params={"cursor": w.cursor})]


def zip_members(reply: Reply) -> dict[str, bytes]:
    """A zip answer's members but the manifest (nothing when the answer is no zip)."""
    if reply.status != 200 or not isinstance(reply.body, bytes):
        return {}
    with zipfile.ZipFile(io.BytesIO(reply.body)) as archive:
        return {n: archive.read(n) for n in archive.namelist() if n != "manifest.json"}


@case("GET", "/api/files/backup")
async def _(w: World):
    # B's backup holds B's own track (same type and name as A's), never A's
    outcome = await call(w.b.api, "B's backup, with A's identity header", "GET", "/api/files/backup", {200},
                         params={"types": "GPX,FAVOURITES"}, headers={"X-User-Id": w.a.user_id})
    assert zip_members(outcome.reply) == {f"files/GPX/{w.track}": b"<gpx>B</gpx>"}, outcome.reply
    return [outcome]


@case("POST", "/api/files/download")
async def _(w: World):
    t, name, head, first = a_ref(w)
    asked = [{"type": t, "name": name, "version_id": v["version_id"]} for v in (head, first)] + [
        {"type": "FAVOURITES", "name": w.fav}, {"type": "FAVOURITES", "name": w.fav,
                                                "version_id": w.trash_item["last_version_id"]}]
    refused = [await call(w.b.api, f"download {f}", "POST", "/api/files/download", {404}, json={"files": [f]})
               for f in asked]
    own = await call(w.b.api, "B's own track, with A's identity header", "POST", "/api/files/download", {200},
                     json={"files": [{"type": t, "name": name}]}, headers={"X-User-Id": w.a.user_id})
    assert zip_members(own.reply) == {f"files/GPX/{name}": b"<gpx>B</gpx>"}, own.reply
    return [*refused, own]


@case("GET", "/api/files/history/{file_type}/{name}")
async def _(w: World):
    return [await call(w.b.api, "history of A's trashed file", "GET", f"/api/files/history/FAVOURITES/{w.fav}",
                       {404})]


@case("PUT", "/api/files/{file_type}/{name}")
async def _(w: World):
    t, name, head, _ = a_ref(w)
    return [await call(w.b.api, "upload based on A's head version", "PUT", f"/api/files/{t}/{name}", {409},
                       params={"base_version": head["version_id"]}, data=b"<gpx>B over A</gpx>"),
            await call(w.b.api, "upload onto A's trashed file's name, based on its last version", "PUT",
                       f"/api/files/FAVOURITES/{w.fav}", {409},
                       params={"base_version": w.trash_item["last_version_id"]}, data=b"<gpx>B</gpx>")]


@case("POST", "/api/files/bulk")
async def _(w: World):
    # one request: a file on A's track name based on A's head, one on A's trashed file's name
    # based on its last version; each file's own result must be a refusal (the request is 200)
    t, name, head, _ = a_ref(w)
    body, content_type = bulk_body([
        (f"{t}/{name}", b"<gpx>B over A</gpx>", {"X-Base-Version": head["version_id"]}),
        (f"FAVOURITES/{w.fav}", b"<gpx>B</gpx>", {"X-Base-Version": w.trash_item["last_version_id"]})])
    outcome = await call(w.b.api, "bulk upload based on A's versions", "POST", "/api/files/bulk", {200},
                         data=body, headers={"Content-Type": content_type})
    results = outcome.reply.body.get("results", []) if outcome.reply.status == 200 else []
    assert outcome.reply.status != 200 or len(results) == 2, outcome.reply
    return [outcome, *(Outcome(f"{outcome.what}: file {r['index']}", Reply(r["status"], r), outcome.sent, REFUSED)
                       for r in results)]


@case("GET", "/api/files/{file_type}/{name}")
async def _(w: World):
    t, name, head, first = a_ref(w)
    return [await call(w.b.api, f"download A's version {v['version_id']} through B's same-named file", "GET",
                       f"/api/files/{t}/{name}", {404}, params={"version": v["version_id"]})
            for v in (head, first)] + [
        await call(w.b.api, "download A's trashed file's last version", "GET", f"/api/files/FAVOURITES/{w.fav}",
                   {404}, params={"version": w.trash_item["last_version_id"]})]


@case("DELETE", "/api/files/{file_type}/{name}")
async def _(w: World):
    t, name, head, first = a_ref(w)
    return [await call(w.b.api, "delete A's first version for good", "DELETE", f"/api/files/{t}/{name}", {404},
                       params={"version": first["version_id"]}),
            await call(w.b.api, "delete based on A's head", "DELETE", f"/api/files/{t}/{name}", {404, 409},
                       params={"base_version": head["version_id"]}),
            await call(w.b.api, "delete A's trashed file", "DELETE", f"/api/files/FAVOURITES/{w.fav}", {404})]


# ---- trash
@case("GET", "/api/trash")
async def _(w: World):
    return [await call(w.b.api, "B's trash", "GET", "/api/trash", {200}, headers={"X-User-Id": w.a.user_id})]


@case("DELETE", "/api/trash")
async def _(w: World):
    return [await call(w.b.api, "empty B's trash", "DELETE", "/api/trash", {200}, headers={"X-User-Id": w.a.user_id})]


@case("DELETE", "/api/trash/items/{item_id}")
async def _(w: World):
    return [await call(w.b.api, "purge A's trash item", "DELETE", f"/api/trash/items/{w.trash_item['id']}", {404})]


@case("POST", "/api/trash/items/{item_id}/restore")
async def _(w: World):
    return [await call(w.b.api, "restore A's trash item", "POST", f"/api/trash/items/{w.trash_item['id']}/restore",
                       {404})]


@case("GET", "/api/trash/items/{item_id}/download")
async def _(w: World):
    return [await call(w.b.api, "download A's trash item", "GET", f"/api/trash/items/{w.trash_item['id']}/download",
                       {404})]


# ---- billing
@case("POST", "/api/billing/start")
async def _(w: World):
    return [await call(w.b.api, "activate Start (B's)", "POST", "/api/billing/start", {200, 201, 409},
                       headers={"X-User-Id": w.a.user_id})]


@case("POST", "/api/billing/purchases")
async def _(w: World):
    return [await call(w.b.api, "submit A's order with A's receipt", "POST", "/api/billing/purchases", {409},
                       json={"platform": "sandbox", "product_id": PRO_PRODUCT, "order_id": w.order_id,
                             "receipt": w.receipt})]


@case("POST", "/api/billing/notifications/{platform}")
async def _(w: World):
    # A's receipt again, as the store would send it: nothing changes (the snapshot says so)
    return [await call(w.b.api.with_token(None), "A's receipt as a store notification", "POST",
                       "/api/billing/notifications/sandbox", {200}, json={"receipt": w.receipt})]


@case("GET", "/api/billing/account")
async def _(w: World):
    return [await call(w.b.api, "B's billing account", "GET", "/api/billing/account", {200},
                       headers={"X-User-Id": w.a.user_id})]


# ---- OsmAnd's /userdata/: accounts
TOKEN_INVALID, DEVICE_NOT_AUTHORIZED, FILE_NOT_AVAILABLE, USED_BY_OTHER = 104, 105, 106, 109


def anon(w: World) -> GatewayClient:
    return w.b.api.with_token(None)


@case("POST", "/userdata/user-register")
async def _(w: World):
    # a login code for A's e-mail goes to A's inbox (the app's login), never to B
    return [await call(anon(w), "a login code for A's e-mail", "POST", "/userdata/user-register", {200, 429},
                       data={"email": w.a.email, "login": "true", "lang": "en", "deviceid": str(uuid.uuid4())})]


@case("POST", "/userdata/device-register")
async def _(w: World):
    return [await call(anon(w), "A's e-mail with A's deletion code", "POST", "/userdata/device-register", {400},
                       {TOKEN_INVALID}, data={"email": w.a.email, "token": w.deletion_code,
                                              "deviceid": str(uuid.uuid4()), "brand": "B", "model": "B"})]


@case("POST", "/userdata/user-update-orderid")
async def _(w: World):
    return [await call(anon(w), "link A's order to B", "POST", "/userdata/user-update-orderid", {400},
                       {USED_BY_OTHER}, data={"email": w.b.email, "orderid": orderid, "deviceid": "x"})
            for orderid in (w.receipt, w.order_id)]


@case("GET", "/userdata/user-validate-sub")
async def _(w: World):
    return [await call(anon(w), "A's device number with B's token", "GET", "/userdata/user-validate-sub", {400},
                       {DEVICE_NOT_AUTHORIZED}, params=w.b.creds(w.a.app["id"]))]


@case("POST", "/userdata/send-code")
async def _(w: World):
    return [await call(anon(w), "a deletion code for A's device number", "POST", "/userdata/send-code", {400},
                       {DEVICE_NOT_AUTHORIZED}, params=w.b.creds(w.a.app["id"]),
                       json={"email": w.a.email, "action": "delete", "lang": "en"}),
            await call(anon(w), "a deletion code with B's device, naming A's e-mail (goes to B)", "POST",
                       "/userdata/send-code", {200, 429}, params=w.b.creds(),
                       json={"email": w.a.email, "action": "delete", "lang": "en"})]


@case("POST", "/userdata/auth/confirm-code")
async def _(w: World):
    return [await call(anon(w), "A's e-mail with a code that is not A's", "POST", "/userdata/auth/confirm-code",
                       {400}, {TOKEN_INVALID}, json={"username": w.a.email, "password": None,
                                                     "token": "0000" if w.deletion_code != "0000" else "1111"})]


@case("POST", "/userdata/delete-account")
async def _(w: World):
    # B's own device and B's own valid deletion code, naming A: only B's account may go
    await advance_clock(w.stack, 31)  # B's send-code case asked for one just now: the resend pause
    before = await count_mails(w.b.api.session, w.stack.smtp_sink_url, w.b.email)
    await w.b.api.with_token(None).call("POST", "/userdata/send-code", params=w.b.creds(),
                                        json={"email": w.b.email, "action": "delete", "lang": "en"})
    b_code = await read_code(w.b.api.session, w.stack.smtp_sink_url, w.b.email, after=before)
    return [await call(anon(w), "delete with A's device number", "POST", "/userdata/delete-account", {400},
                       {DEVICE_NOT_AUTHORIZED}, params=w.b.creds(w.a.app["id"]),
                       json={"username": w.a.email, "password": None, "token": w.deletion_code}),
            await call(anon(w), "delete with B's device and A's deletion code", "POST", "/userdata/delete-account",
                       {400}, {TOKEN_INVALID}, params=w.b.creds(),
                       json={"username": w.a.email, "password": None, "token": w.deletion_code}),
            await call(anon(w), "delete with B's device and B's code, naming A (deletes B)", "POST",
                       "/userdata/delete-account", {200}, params=w.b.creds(),
                       json={"username": w.a.email, "password": None, "token": b_code})]


# ---- OsmAnd's /userdata/: files and trash
def a_entries(w: World) -> list[dict]:
    return [{"type": ref.split("/", 1)[0], "name": ref.split("/", 1)[1], "updatetime": v["updatetime"]}
            for ref, history in w.versions.items() for v in history]


@case("POST", "/userdata/empty-trash")
async def _(w: World):
    item = w.trash_item
    entry = {"name": item["name"], "type": item["type"], "updatetime": item["tombstone_update_ms"]}
    return [await call(anon(w), "empty A's trash entry with A's device number", "POST", "/userdata/empty-trash",
                       {400}, {DEVICE_NOT_AUTHORIZED}, params=w.b.creds(w.a.app["id"]), json=[entry]),
            await call(anon(w), "empty A's trash entry with B's device", "POST", "/userdata/empty-trash", {200},
                       params=w.b.creds(), json=[entry])]


@case("GET", "/userdata/list-files")
async def _(w: World):
    return [await call(anon(w), "list with A's device number", "GET", "/userdata/list-files", {400},
                       {DEVICE_NOT_AUTHORIZED}, params={**w.b.creds(w.a.app["id"]), "allVersions": "true"}),
            await call(anon(w), "B's own list", "GET", "/userdata/list-files", {200},
                       params={**w.b.creds(), "allVersions": "true"})]


@case("POST", "/userdata/upload-file")
async def _(w: World):
    return [await call(anon(w), "upload with A's device number", "POST", "/userdata/upload-file", {400},
                       {DEVICE_NOT_AUTHORIZED}, params={**w.b.creds(w.a.app["id"]), "name": w.fav,
                                                        "type": "FAVOURITES"},
                       data=b"--x\r\ncontent-disposition: form-data; name=\"file\"; filename=\"f.gz\"\r\n\r\n"
                            + gz(b"B") + b"\r\n--x--\r\n",
                       headers={"Content-Type": "multipart/form-data; boundary=x"})]


@case("GET", "/userdata/download-file")
async def _(w: World):
    return [await call(anon(w), f"download A's {e['type']}/{e['name']} {e['updatetime']} with B's device", "GET",
                       "/userdata/download-file", {400}, {FILE_NOT_AVAILABLE},
                       params={**w.b.creds(), "name": e["name"], "type": e["type"], "updatetime": str(e["updatetime"])})
            for e in a_entries(w)] + [
        await call(anon(w), "download with A's device number", "GET", "/userdata/download-file", {400},
                   {DEVICE_NOT_AUTHORIZED}, params={**w.b.creds(w.a.app["id"]), "name": w.track, "type": "GPX"})]


@case("POST", "/userdata/delete-file")
async def _(w: World):
    return [await call(anon(w), "delete A's file with A's device number", "POST", "/userdata/delete-file", {400},
                       {DEVICE_NOT_AUTHORIZED}, data={"name": w.track, "type": "GPX", **w.b.creds(w.a.app["id"])})]


@case("POST", "/userdata/delete-file-version")
async def _(w: World):
    return [await call(anon(w), f"delete A's version {e['type']}/{e['name']} {e['updatetime']} with B's device",
                       "POST", "/userdata/delete-file-version", {400}, {FILE_NOT_AVAILABLE},
                       data={"name": e["name"], "type": e["type"], "updatetime": str(e["updatetime"]), **w.b.creds()})
            for e in a_entries(w)] + [
        await call(anon(w), "delete a version with A's device number", "POST", "/userdata/delete-file-version",
                   {400}, {DEVICE_NOT_AUTHORIZED},
                   data={"name": w.track, "type": "GPX", "updatetime": str(a_entries(w)[0]["updatetime"]),
                         **w.b.creds(w.a.app["id"])})]


@case("GET", "/userdata/check-file-on-server")
async def _(w: World):
    return [await call(anon(w), "A's file name", "GET", "/userdata/check-file-on-server", {200},
                       params={"name": w.track, "type": "GPX"})]


# ---------------------------------------------------------------------------------------------
# the tests
# ---------------------------------------------------------------------------------------------

def test_every_documented_operation_has_a_tenancy_case():
    documented = documented_operations()
    assert documented - set(CASES) == set(), "operations of docs/openapi.yaml without a tenancy case"
    assert set(CASES) - documented == set(), "tenancy cases for operations docs/openapi.yaml does not list"
    assert {f"{m} {p}" for m, p in CASES} >= set(LAST)


def judge(outcome: Outcome, markers: set[str]) -> list[str]:
    problems = []
    reply = outcome.reply
    if reply.status not in outcome.allowed:
        problems.append(f"status {reply.status}, expected one of {sorted(outcome.allowed)}: {reply.body!r:.300}")
    elif reply.status == 400 and outcome.osmand_codes:
        code = reply.body.get("error", {}).get("errorCode") if isinstance(reply.body, dict) else None
        if code not in outcome.osmand_codes:
            problems.append(f"errorCode {code}, expected {sorted(outcome.osmand_codes)}: {reply.body!r:.300}")
    text = reply.body.decode("latin-1") if isinstance(reply.body, bytes) else json.dumps(reply.body)
    text += json.dumps({k: v for k, v in reply.headers.items() if k.lower() in ("location", "etag", "x-version-id")})
    leaked = sorted(m for m in markers if m in text and m not in outcome.sent)
    if leaked:
        problems.append(f"the answer carries A's {leaked}")
    return problems


async def test_b_cannot_read_or_change_anything_of_a(stack, gateway, receipts):
    world = await build_world(stack, gateway, receipts)
    before = await snapshot(world)
    markers = world.markers()
    last = [tuple(op.split(" ", 1)) for op in LAST]
    order = sorted((op for op in CASES if op not in last), key=lambda op: (op[1], op[0])) + last
    problems, calls = [], 0
    for op in order:
        for outcome in await CASES[op](world):
            calls += 1
            problems += [f"{op[0]} {op[1]} ({outcome.what}): {p}" for p in judge(outcome, markers)]
    after = await snapshot(world)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    for key in changed:
        problems.append(f"A's {key} changed:\n  before {before.get(key)!r:.600}\n  after  {after.get(key)!r:.600}")
    print(f"\n  {calls} calls by B over {len(CASES)} operations; A's snapshot: {len(before)} views, "
          f"{len(before['blobs'])} blobs")
    assert not problems, "\n".join(problems)
    # B's own deletion went through (the last case) and took nothing of A's with it
    assert (await world.b.api.call("GET", "/api/auth/account")).status == 401
    assert re.fullmatch(r"\d+", world.a.app["id"])
