"""OsmAnd's /userdata/ file endpoints, written from the protocol (../shared/OSMAND-PROTOCOL.md,
"Files" and "How the app syncs") and replayed as the app sends them, through the gateway:
query credentials, FORM posts, a chunked multipart upload with the app's boundary and a
lowercase content-disposition header around a gzip part, gzip downloads. The same files must be
the native API's: versions, trash items and usage are one truth for both."""

import gzip
import os
import re
import uuid
from collections.abc import AsyncIterator

import aiohttp
from minio import Minio
from pymongo import AsyncMongoClient

from osmcloud_localstack.client import GatewayClient, Reply, count_mails, eventually, login, read_code
from osmcloud_localstack.testing import advance_clock

BOUNDARY = "CowMooCowMooCowCowCow"
MIB = 1024 * 1024
START_QUOTA = 5 * MIB
RESEND_SECONDS = 30
F_FIELDS = {"userid", "id", "deviceid", "filesize", "type", "name", "updatetimems", "clienttimems", "zipSize"}
TOTALS = ("totalZipSize", "totalFileSize", "totalFiles", "totalFileVersions", "maximumAccountSize")


def osmand_error(reply: Reply) -> int | None:
    if reply.status != 400 or not isinstance(reply.body, dict):
        return None
    return reply.body.get("error", {}).get("errorCode")


class OsmandDevice:
    """One phone running OsmAnd: what it sends, parameter for parameter."""

    def __init__(self, gateway: GatewayClient, model: str = "Pixel 8") -> None:
        self.gw, self.phone_id, self.model = gateway.with_token(None), str(uuid.uuid4()), model
        self.device: dict = {}

    @property
    def creds(self) -> dict[str, str]:
        return {"deviceid": self.device["id"], "accessToken": self.device["accesstoken"]}

    async def sign_in(self, sink_url: str, email: str, login: bool) -> "OsmandDevice":
        before = await count_mails(self.gw.session, sink_url, email)
        reply = await self.gw.call("POST", "/userdata/user-register", data={
            "email": email, "login": "true" if login else "false", "lang": "en", "deviceid": self.phone_id})
        assert reply.status == 200, reply
        code = await read_code(self.gw.session, sink_url, email, after=before)
        reply = await self.gw.call("POST", "/userdata/device-register", data={
            "email": email, "token": code, "deviceid": self.phone_id, "brand": "Google", "model": self.model,
            "lang": "en", "orderid": ""})
        assert reply.status == 200, reply
        self.device = reply.body
        return self

    async def list_files(self, types: str | None = None, all_versions: bool = True) -> Reply:
        params = {**self.creds, "allVersions": "true" if all_versions else "false"}
        if types is not None:
            params["type"] = types
        return await self.gw.call("GET", "/userdata/list-files", params=params)

    async def listing(self, types: str | None = None) -> dict:
        reply = await self.list_files(types)
        assert reply.status == 200, reply
        return reply.body

    async def upload(self, file_type: str, name: str, content: bytes | None = None, *, raw: bytes | None = None,
                     clienttime: int = 1_700_000_000_000, query: dict | None = None) -> Reply:
        """A chunked multipart body, built by hand as the app writes it (no Content-Length)."""
        part = gzip.compress(content) if raw is None else raw
        params = query if query is not None else {**self.creds, "name": name, "type": file_type,
                                                  "clienttime": str(clienttime), "autoSync": "false"}
        return await self.gw.call("POST", "/userdata/upload-file", params=params, data=_chunked(_multipart(
            name, part)), headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})

    async def download(self, file_type: str, name: str, updatetime: int | None = None) -> tuple[int, bytes, dict]:
        """(status, raw body, headers): the raw bytes, as the app gunzips them itself."""
        params = {**self.creds, "name": name, "type": file_type}
        if updatetime is not None:
            params["updatetime"] = str(updatetime)
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            async with session.get(self.gw.base + "/userdata/download-file", params=params,
                                   headers={"Accept-Encoding": "deflate, gzip"}) as response:
                return response.status, await response.read(), dict(response.headers)

    async def delete_file(self, file_type: str, name: str) -> Reply:
        return await self.gw.call("POST", "/userdata/delete-file",
                                  data={**self.creds, "name": name, "type": file_type})

    async def delete_version(self, file_type: str, name: str, updatetime: int) -> Reply:
        return await self.gw.call("POST", "/userdata/delete-file-version",
                                  data={**self.creds, "name": name, "type": file_type, "updatetime": str(updatetime)})


def _multipart(name: str, part: bytes) -> list[bytes]:
    head = (f"--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{name}.gz\"\r\n"
            f"content-type: application/octet-stream\r\n\r\n").encode()
    return [head, part, f"\r\n--{BOUNDARY}--\r\n".encode()]


async def _chunked(pieces: list[bytes], size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for piece in pieces:
        for i in range(0, len(piece), size):
            yield piece[i:i + size]


def newest(listing: dict, file_type: str, name: str) -> dict:
    """The app's rule: the first allFiles entry of a (type, name) is its newest version."""
    return next(e for e in listing["allFiles"] if e["type"] == file_type and e["name"] == name)


def check_shape(listing: dict) -> None:
    for key in TOTALS:
        assert isinstance(listing[key], int), (key, listing)
    assert isinstance(listing["userid"], int)
    for entry in listing["allFiles"] + listing["uniqueFiles"]:
        assert set(entry) == F_FIELDS, entry
        assert all(isinstance(entry[k], int) for k in F_FIELDS - {"type", "name"}), entry
    times = [e["updatetimems"] for e in listing["allFiles"]]
    assert times == sorted(times, reverse=True), "allFiles must be newest first"
    for entry in listing["uniqueFiles"]:
        assert entry in listing["allFiles"] and entry["filesize"] >= 0
        assert entry == newest(listing, entry["type"], entry["name"])


async def osmand_user(stack, gateway, email: str) -> OsmandDevice:
    """Signs up through /userdata/ and waits for billing's Start to reach files."""
    phone = await OsmandDevice(gateway).sign_in(stack.smtp_sink_url, email, login=False)

    async def start_known():
        listing = await phone.listing()
        return listing if listing["maximumAccountSize"] == START_QUOTA else None
    await eventually(start_known, what="Start's quota in list-files")
    return phone


async def another_device(stack, gateway, email: str, model: str = "iPhone") -> OsmandDevice:
    await advance_clock(stack, RESEND_SECONDS + 1)  # one code per e-mail every 30 s
    return await OsmandDevice(gateway, model=model).sign_in(stack.smtp_sink_url, email, login=True)


async def native_device(stack, gateway, email: str) -> GatewayClient:
    await advance_clock(stack, RESEND_SECONDS + 1)
    client, _ = await login(gateway, stack.smtp_sink_url, email)
    return client


async def trash_count(native: GatewayClient) -> int:
    reply = await native.call("GET", "/api/trash")
    assert reply.status == 200, reply
    return reply.body["total_items"]


async def wait_trash(native: GatewayClient, expected: int, what: str) -> None:
    async def done():
        return True if await trash_count(native) == expected else None
    await eventually(done, what=what)


# ---------------------------------------------------------------------------------------------
async def test_backup_list_download_and_delete_old_versions_as_the_app_does(stack, gateway, unique_email):
    phone = await osmand_user(stack, gateway, unique_email)
    empty = await phone.listing()
    check_shape(empty)
    assert (empty["totalFiles"], empty["totalFileVersions"], empty["totalFileSize"], empty["allFiles"]) == (0, 0, 0, [])

    favourites = [f"<gpx><wpt n='{i}'/></gpx>".encode() * (200 + i) for i in range(4)]
    answers = []
    for content in favourites:  # fast re-uploads of one file
        reply = await phone.upload("FAVOURITES", "favourites.gpx", content, clienttime=1_700_000_000_123)
        assert reply.status == 200, reply
        answers.append(reply.body)
    first = answers[0]
    assert first["status"] == "ok" and first["type"] == "FAVOURITES" and first["name"] == "favourites.gpx"
    assert first["filesize"] == len(favourites[0]) and first["zipfilesize"] == len(gzip.compress(favourites[0]))
    assert first["clienttime"] == 1_700_000_000_123
    times = [a["updatetime"] for a in answers]
    assert times == sorted(set(times)), f"updatetime must be unique and increasing: {times}"
    profile = b'{"app_mode":"car"}'
    assert (await phone.upload("PROFILE", "profile_car.json", profile)).status == 200

    listing = await phone.listing()
    check_shape(listing)
    print(f"\n  list-files → totals {[listing[k] for k in TOTALS]}, first entry {listing['allFiles'][0]}")
    fav_versions = [e for e in listing["allFiles"] if e["type"] == "FAVOURITES"]
    assert [e["updatetimems"] for e in fav_versions] == list(reversed(times))  # the answers' updatetime
    assert [e["filesize"] for e in fav_versions] == [len(c) for c in reversed(favourites)]
    assert len({e["id"] for e in listing["allFiles"]}) == len(listing["allFiles"])  # unique per version
    assert {e["deviceid"] for e in listing["allFiles"]} == {int(phone.device["id"])}
    assert {e["userid"] for e in listing["allFiles"]} == {int(phone.device["userid"])} == {listing["userid"]}
    assert listing["totalFiles"] == 2 and listing["totalFileVersions"] == 5

    # the type filter, one type or a comma list
    only_fav = await phone.listing("FAVOURITES")
    assert {e["type"] for e in only_fav["allFiles"]} == {"FAVOURITES"} and len(only_fav["allFiles"]) == 4
    both = await phone.listing("PROFILE,FAVOURITES")
    assert both["allFiles"] == listing["allFiles"]
    assert (await phone.listing("GPX"))["allFiles"] == []
    without_versions = (await phone.list_files(all_versions=False)).body
    assert without_versions["uniqueFiles"] == listing["uniqueFiles"] and without_versions["totalFiles"] == 2

    # downloads: that exact version by updatetime, the newest without; gzip the app gunzips
    for content, updatetime in ((favourites[0], times[0]), (favourites[2], times[2])):
        status, raw, headers = await phone.download("FAVOURITES", "favourites.gpx", updatetime)
        assert status == 200 and headers.get("Content-Encoding") == "gzip"
        assert gzip.decompress(raw) == content
    status, raw, _ = await phone.download("FAVOURITES", "favourites.gpx")
    assert status == 200 and gzip.decompress(raw) == favourites[-1]

    # "delete old versions": delete-file-version on every allFiles entry not in uniqueFiles
    for entry in listing["allFiles"]:
        if entry not in listing["uniqueFiles"]:
            reply = await phone.delete_version(entry["type"], entry["name"], entry["updatetimems"])
            assert reply.status == 200 and reply.body == {"status": "ok"}, reply
    pruned = await phone.listing()
    check_shape(pruned)
    assert pruned["allFiles"] == pruned["uniqueFiles"] == listing["uniqueFiles"]
    status, raw, _ = await phone.download("FAVOURITES", "favourites.gpx", times[0])
    assert status == 400  # that version is gone

    reply = await gateway.call("GET", "/userdata/check-file-on-server",
                               params={"name": "Germany_berlin_europe.obf", "type": "file"})
    assert reply.status == 200 and reply.body == {"status": "not-present"}


async def test_second_device_sync_decisions_trash_restore_delete_permanently_and_delete_all(
        stack, gateway, unique_email):
    phone = await osmand_user(stack, gateway, unique_email)
    tablet = await another_device(stack, gateway, unique_email)
    native = await native_device(stack, gateway, unique_email)

    v1 = (await phone.upload("FAVOURITES", "favourites.gpx", b"<gpx>one</gpx>")).body
    # the tablet has never synced it (uploadTime 0): cloud changed; it downloads that version
    seen = newest(await tablet.listing(), "FAVOURITES", "favourites.gpx")
    assert seen["updatetimems"] == v1["updatetime"] and seen["deviceid"] == int(phone.device["id"])
    status, raw, _ = await tablet.download("FAVOURITES", "favourites.gpx", seen["updatetimems"])
    assert status == 200 and gzip.decompress(raw) == b"<gpx>one</gpx>"
    tablet_upload_time = seen["updatetimems"]

    v2 = (await phone.upload("FAVOURITES", "favourites.gpx", b"<gpx>two</gpx>")).body
    assert newest(await tablet.listing(), "FAVOURITES", "favourites.gpx")["updatetimems"] > tablet_upload_time

    # delete-file on the phone: the tablet sees a tombstone as newest; our trash has the item
    reply = await phone.delete_file("FAVOURITES", "favourites.gpx")
    assert reply.status == 200 and reply.body == {"status": "ok"}, reply
    listing = await tablet.listing()
    check_shape(listing)
    tombstone = newest(listing, "FAVOURITES", "favourites.gpx")
    assert tombstone["filesize"] == -1 and tombstone["zipSize"] == -1 and tombstone["updatetimems"] > v2["updatetime"]
    assert listing["uniqueFiles"] == [] and listing["totalFiles"] == 0
    await wait_trash(native, 1, "the deleted file in the trash")
    assert (await native.call("GET", "/api/files/usage")).body["used_bytes"] == 0

    # restore, as the app does it: delete-file-version on the tombstone
    reply = await tablet.delete_version("FAVOURITES", "favourites.gpx", tombstone["updatetimems"])
    assert reply.status == 200, reply
    restored = await phone.listing()
    check_shape(restored)
    back = newest(restored, "FAVOURITES", "favourites.gpx")
    assert back["updatetimems"] == v2["updatetime"] and back["filesize"] == len(b"<gpx>two</gpx>")
    assert restored["uniqueFiles"] == [back]
    await wait_trash(native, 0, "the restored file's trash item gone")
    assert (await native.call("GET", "/api/files/usage")).body["used_bytes"] == len(b"<gpx>two</gpx>")

    # delete permanently (older apps): delete-file, then delete-file-version on the versions and,
    # last, the tombstone (the other order, tombstone first, is what "delete all" below does)
    assert (await phone.delete_file("FAVOURITES", "favourites.gpx")).status == 200
    await wait_trash(native, 1, "deleted again")
    listing = await phone.listing()
    assert listing["allFiles"][0]["filesize"] == -1 and len(listing["allFiles"]) == 3
    for entry in reversed(listing["allFiles"]):
        assert (await phone.delete_version(entry["type"], entry["name"], entry["updatetimems"])).status == 200
    assert (await phone.listing())["allFiles"] == []
    await wait_trash(native, 0, "nothing left in the trash after delete permanently")

    # delete all: delete-file-version on every entry
    for name in ("a.gpx", "b.gpx"):
        for i in range(2):
            assert (await tablet.upload("FAVOURITES", name, f"{name} {i}".encode())).status == 200
    assert (await tablet.upload("PROFILE", "p.json", b"{}")).status == 200
    assert (await tablet.delete_file("PROFILE", "p.json")).status == 200
    await wait_trash(native, 1, "p.json in the trash")
    listing = await phone.listing()
    assert len(listing["allFiles"]) == 6
    for entry in listing["allFiles"]:
        reply = await phone.delete_version(entry["type"], entry["name"], entry["updatetimems"])
        assert reply.status == 200, (entry, reply)
    final = await phone.listing()
    assert final["allFiles"] == [] and final["totalFileVersions"] == 0
    usage = (await native.call("GET", "/api/files/usage")).body
    assert usage["used_bytes"] == 0 and usage["file_count"] == 0 and usage["reserved_bytes"] == 0
    await wait_trash(native, 0, "delete all leaves no trash item")


async def test_bad_uploads_store_nothing_and_errors_are_the_protocols(stack, gateway, unique_email):
    phone = await osmand_user(stack, gateway, unique_email)
    native = await native_device(stack, gateway, unique_email)

    reply = await phone.upload("FAVOURITES", "f.gpx", raw=b"<gpx>not gzipped</gpx>")
    assert osmand_error(reply) == 107, reply
    cut = gzip.compress(os.urandom(100_000))[:50_000]
    assert osmand_error(await phone.upload("FAVOURITES", "f.gpx", raw=cut)) == 107
    # Start allows 2 MiB per file: 3 MiB that gzip to a few KB are still 3 MiB
    reply = await phone.upload("FAVOURITES", "big.gpx", b"\0" * (3 * MIB))
    assert osmand_error(reply) == 108, reply
    assert re.match(r"Maximum size of OsmAnd Cloud exceeded \d+ MB\.", reply.body["error"]["message"]), reply
    print(f"\n  108 → {reply.body}")
    reply = await phone.upload("GPX", "track.gpx", b"<gpx/>")
    assert osmand_error(reply) == 102, reply  # Start does not include GPX
    # the quota: two files of 2 MiB fit in 5 MiB, a third does not
    for name in ("one.gpx", "two.gpx"):
        assert (await phone.upload("FAVOURITES", name, os.urandom(2 * MIB - 1000))).status == 200
    reply = await phone.upload("FAVOURITES", "three.gpx", os.urandom(2 * MIB - 1000))
    assert osmand_error(reply) == 108, reply

    listing = await phone.listing()
    assert sorted(e["name"] for e in listing["allFiles"]) == ["one.gpx", "two.gpx"]
    usage = (await native.call("GET", "/api/files/usage")).body
    assert usage["used_bytes"] == 2 * (2 * MIB - 1000) and usage["reserved_bytes"] == 0 and usage["file_count"] == 2

    # missing or wrong parameters: a clear protocol error, never a 500
    creds = phone.creds
    for query in ({**creds, "type": "FAVOURITES"}, {**creds, "name": "x.gpx"},
                  {**creds, "name": "x.gpx", "type": "NO_SUCH_TYPE"},
                  {**creds, "name": "x.gpx", "type": "FAVOURITES", "clienttime": "yesterday"}):
        reply = await phone.upload("FAVOURITES", "x.gpx", b"x", query=query)
        assert reply.status == 400 and osmand_error(reply) is not None, (query, reply)
    reply = await phone.gw.call("POST", "/userdata/upload-file",
                                params={**creds, "name": "x.gpx", "type": "FAVOURITES"},
                                data=b"plain body", headers={"Content-Type": "application/octet-stream"})
    assert osmand_error(reply) == 400, reply
    status, _, _ = await phone.download("FAVOURITES", "one.gpx", 12345)
    assert status == 400
    reply = await phone.gw.call("GET", "/userdata/download-file",
                                params={**creds, "name": "one.gpx", "type": "FAVOURITES", "updatetime": "12345"})
    assert osmand_error(reply) == 106
    reply = await phone.gw.call("GET", "/userdata/download-file", params={**creds, "name": "nothing.gpx",
                                                                          "type": "FAVOURITES"})
    assert osmand_error(reply) == 106
    assert osmand_error(await phone.delete_version("FAVOURITES", "one.gpx", 12345)) == 106
    assert osmand_error(await phone.delete_file("FAVOURITES", "nothing.gpx")) == 106
    reply = await phone.gw.call("POST", "/userdata/delete-file-version",
                                data={**creds, "name": "one.gpx", "type": "FAVOURITES"})
    assert osmand_error(reply) == 400, reply
    reply = await phone.gw.call("GET", "/userdata/list-files", params={"deviceid": creds["deviceid"]})
    assert osmand_error(reply) == 105
    reply = await phone.gw.call("GET", "/userdata/list-files", params={**creds, "accessToken": "wrong"})
    assert osmand_error(reply) == 105
    assert (await native.call("GET", "/api/files/usage")).body["used_bytes"] == 2 * (2 * MIB - 1000)

    # a device logged out (here through the native API) gets 105 on its next call, uploads too
    devices = (await native.call("GET", "/api/auth/devices")).body["devices"]
    osmand = [d for d in devices if d["platform"] == "osmand"]
    assert (await native.call("DELETE", f"/api/auth/devices/{osmand[0]['id']}")).status == 200
    assert osmand_error(await phone.list_files()) == 105
    assert osmand_error(await phone.upload("FAVOURITES", "late.gpx", b"late")) == 105
    status, raw, _ = await phone.download("FAVOURITES", "one.gpx")
    assert status == 400


async def test_one_account_through_userdata_and_the_native_api(stack, gateway, unique_email):
    phone = await osmand_user(stack, gateway, unique_email)
    native = await native_device(stack, gateway, unique_email)

    # OsmAnd uploads; the native device lists, reads and downloads the same version
    content = b"<gpx><wpt lat='52.5' lon='13.4'/></gpx>" * 50
    uploaded = (await phone.upload("FAVOURITES", "favourites.gpx", content)).body
    files = (await native.call("GET", "/api/files")).body["files"]
    [mine] = [f for f in files if f["name"] == "favourites.gpx"]
    assert mine["updatetime"] == uploaded["updatetime"] and mine["size"] == len(content)
    reply = await native.call("GET", "/api/files/FAVOURITES/favourites.gpx")
    assert reply.status == 200 and reply.body == content  # the native API serves the plain content

    # the native device uploads; OsmAnd sees it with the native device's integer id and downloads gzip
    profile = b'{"app_mode":"bicycle"}'
    reply = await native.call("PUT", "/api/files/PROFILE/profile_bicycle.json", data=profile,
                              params={"clienttime": "1700000000999"})
    assert reply.status == 201, reply
    listing = await phone.listing()
    check_shape(listing)
    entry = newest(listing, "PROFILE", "profile_bicycle.json")
    assert entry["updatetimems"] == reply.body["updatetime"] and entry["filesize"] == len(profile)
    assert entry["deviceid"] > 0 and entry["deviceid"] != int(phone.device["id"])
    assert entry["clienttimems"] == 1700000000999
    status, raw, headers = await phone.download("PROFILE", "profile_bicycle.json")
    assert status == 200 and headers.get("Content-Encoding") == "gzip" and gzip.decompress(raw) == profile

    # the native device deletes: OsmAnd sees the tombstone; OsmAnd restores: the native trash empties
    assert (await native.call("DELETE", "/api/files/FAVOURITES/favourites.gpx")).status == 200
    await wait_trash(native, 1, "native delete in the trash")
    tombstone = newest(await phone.listing(), "FAVOURITES", "favourites.gpx")
    assert tombstone["filesize"] == -1 and tombstone["deviceid"] == entry["deviceid"]
    assert (await phone.delete_version("FAVOURITES", "favourites.gpx", tombstone["updatetimems"])).status == 200
    await wait_trash(native, 0, "OsmAnd's restore empties the native trash")
    history = (await native.call("GET", "/api/files/history/FAVOURITES/favourites.gpx")).body["versions"]
    assert [v["updatetime"] for v in history] == [uploaded["updatetime"]]

    # OsmAnd deletes: the native trash has the item and the native usage follows
    assert (await phone.delete_file("PROFILE", "profile_bicycle.json")).status == 200
    await wait_trash(native, 1, "OsmAnd's delete in the native trash")
    trash = (await native.call("GET", "/api/trash")).body
    print(f"\n  native trash after OsmAnd's delete-file → {trash}")
    usage = (await native.call("GET", "/api/files/usage")).body
    listing = (await phone.list_files(all_versions=False)).body
    assert usage["used_bytes"] == listing["totalFileSize"] == len(content) and usage["file_count"] == 1

    # the native API deletes one version for good; OsmAnd no longer lists it
    assert (await native.call("DELETE", "/api/files/FAVOURITES/favourites.gpx",
                              params={"version": history[0]["version_id"]})).status == 200
    listing = await phone.listing()
    assert [e for e in listing["allFiles"] if e["type"] == "FAVOURITES"] == []

    # and OsmAnd deletes the trashed PROFILE permanently (versions, then its tombstone): the
    # native trash is empty again (nothing left for the 30-day purge of later tests either)
    for entry in reversed(listing["allFiles"]):
        assert (await phone.delete_version(entry["type"], entry["name"], entry["updatetimems"])).status == 200
    await wait_trash(native, 0, "OsmAnd's delete permanently empties the native trash")


async def test_twenty_backups_of_one_file_keep_at_most_twice_the_quota(stack, gateway, unique_email):
    """Issue 16's storage attack as the app would make it: the server keeps at most the
    storage limit (2 x Start's 5 MiB, docs/adr/0005-storage-bound.md) — counted in S3 — and
    list-files (streamed) lists exactly what is kept, in the protocol's shape."""
    phone = await osmand_user(stack, gateway, unique_email)
    name = f"favourites-{uuid.uuid4().hex}.gpx"
    for i in range(20):
        reply = await phone.upload("FAVOURITES", name, bytes([i]) * (1024 * 1024))
        assert reply.status == 200, reply
    listing = await phone.listing()
    check_shape(listing)
    kept = [e for e in listing["allFiles"] if e["name"] == name]
    assert 1 < len(kept) <= 9 and listing["totalFileVersions"] == len(kept)
    assert listing["totalFileSize"] == sum(e["filesize"] for e in kept) <= 2 * START_QUOTA
    assert [e["filesize"] for e in listing["uniqueFiles"]] == [1024 * 1024]
    s3 = Minio(stack.s3_endpoint, access_key=stack.s3_access_key, secret_key=stack.s3_secret_key, secure=False)
    mongo = AsyncMongoClient(stack.mongo_url)
    try:
        version = await mongo[f"{stack.db_prefix}files"]["versions"].find_one({"name": name})
    finally:
        await mongo.close()
    owner = version["user_id"]
    stored = sum(o.size for o in s3.list_objects(stack.s3_bucket, prefix=f"users/{owner}/", recursive=True))
    assert stored == listing["totalFileSize"] <= 2 * START_QUOTA
    status, body, _ = await phone.download("FAVOURITES", name)
    assert status == 200 and gzip.decompress(body) == bytes([19]) * (1024 * 1024)
