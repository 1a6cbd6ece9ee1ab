"""Bulk upload through the gateway (POST /api/files/bulk, docs/bulk-upload.md): one request,
each file judged on its own, and then — at once, no wait — every read a client makes next
(listing, usage, history, the changes feed, the storage page) shows exactly the stored files,
Kafka carries the same events as for single uploads, and refused files left nothing."""

import hashlib
import os

from osmcloud_common.events import Entitlement
from osmcloud_localstack.client import bulk_body

KIB = 1024
PLAN = Entitlement(plan="start", quota_bytes=12_000, max_file_bytes=8_000, max_files=100,
                   allowed_types=["FAVOURITES", "GLOBAL", "OSM_EDITS", "OSM_NOTES", "PROFILE"])


async def test_a_result_per_file_and_every_next_read_shows_exactly_the_stored_files(files):
    me, session = await files.user_with(PLAN)
    user = session["user_id"]
    home = await me.call("PUT", "/api/files/FAVOURITES/home.gpx", data=b"h" * 100)
    assert home.status == 201, home
    a, b, ride = os.urandom(1000), os.urandom(5000), b"<gpx/>"
    body, content_type = bulk_body([
        ("FAVOURITES/trips/a.gpx", a, {"X-File-Size": "1000"}),                 # stored
        ("FAVOURITES/home.gpx", b"conflict", {}),                                # exists: no base, no overwrite
        ("GPX/ride.gpx", ride, {}),                                              # GPX is not in this plan
        ("FAVOURITES/big.gpx", os.urandom(8001), {}),                            # over 8,000 bytes per file
        ("PROFILE/b.json", b, {"X-Client-Time": "1700000000000"}),               # stored (chunked: no size)
        ("OSM_NOTES/quota.osn", os.urandom(7000), {"X-File-Size": "7000"}),     # over the 12,000 quota
    ])
    reply = await me.call("POST", "/api/files/bulk", data=body, headers={"Content-Type": content_type})
    assert reply.status == 200, reply
    results = reply.body["results"]
    assert [(r["name"], r["status"], r.get("error", {}).get("code")) for r in results] == [
        ("trips/a.gpx", 201, None), ("home.gpx", 409, "version_conflict"), ("ride.gpx", 403, "type_not_in_plan"),
        ("big.gpx", 413, "file_too_large"), ("b.json", 201, None), ("quota.osn", 413, "quota_exceeded")]
    assert results[1]["error"]["head"]["version_id"] == home.body["version_id"]
    assert results[0]["checksum"] == "sha256:" + hashlib.sha256(a).hexdigest() and results[4]["size"] == 5000
    assert (reply.body["stored"], reply.body["refused"]) == (2, 4)
    assert reply.body["usage"] == {"used_bytes": 6100, "file_count": 3, "quota_bytes": 12_000}

    # at once: the listing, usage, history, downloads and the changes feed
    listing = (await me.call("GET", "/api/files")).body["files"]
    assert sorted((f["type"], f["name"], f["version_id"]) for f in listing) == sorted([
        ("FAVOURITES", "home.gpx", home.body["version_id"]), ("FAVOURITES", "trips/a.gpx", results[0]["version_id"]),
        ("PROFILE", "b.json", results[4]["version_id"])])
    usage = (await me.call("GET", "/api/files/usage")).body
    assert (usage["used_bytes"], usage["file_count"], usage["reserved_bytes"]) == (6100, 3, 0)
    history = (await me.call("GET", "/api/files/history/PROFILE/b.json")).body["versions"]
    assert [(v["version_id"], v["clienttime"]) for v in history] == [(results[4]["version_id"], 1700000000000)]
    download = await me.session.get(f"{me.base}/api/files/FAVOURITES/trips/a.gpx",
                                     headers={"Authorization": f"Bearer {me.token}"})
    assert download.status == 200 and await download.read() == a
    changes = (await me.call("GET", "/api/files/changes")).body
    assert [(c["kind"], c["name"]) for c in changes["changes"]] == [
        ("uploaded", "home.gpx"), ("uploaded", "trips/a.gpx"), ("uploaded", "b.json")]
    for refused in ("/api/files/GPX/ride.gpx", "/api/files/FAVOURITES/big.gpx", "/api/files/OSM_NOTES/quota.osn"):
        assert (await me.call("GET", refused)).status == 404
    storage = (await me.call("GET", "/api/files/storage")).body
    assert {t["type"]: t["file_count"] for t in storage["types"] if t["file_count"]} == {"FAVOURITES": 2, "PROFILE": 1}

    # nothing of the refused files is kept; the same events as single uploads reach Kafka
    await files.assert_nothing_held(user, 6100, 3)
    assert len(await files.blob_keys(user)) == 3 and len(await files.versions(user)) == 3

    def complete(events: list[dict]) -> bool:
        return sum(e["type"] == "file-uploaded" for e in events) >= 3 and any(
            e["type"] == "storage-usage-changed" and e["data"]["used_bytes"] == 6100 for e in events)
    events = await files.events("files", user, complete)
    uploaded = {e["data"]["name"]: e["data"] for e in events if e["type"] == "file-uploaded"}
    assert set(uploaded) == {"home.gpx", "trips/a.gpx", "b.json"}
    assert uploaded["trips/a.gpx"]["version_id"] == results[0]["version_id"]
    assert uploaded["b.json"]["size"] == 5000 and uploaded["b.json"]["device_id"] == session["device_id"]


async def test_an_upload_in_bulk_over_a_trashed_file_takes_it_out_of_the_trash_at_once(files):
    me, _ = await files.start_user()
    assert (await me.call("PUT", "/api/files/FAVOURITES/gone.gpx", data=b"old")).status == 201
    assert (await me.call("DELETE", "/api/files/FAVOURITES/gone.gpx")).status == 200
    assert [i["name"] for m in (await me.call("GET", "/api/trash")).body["months"] for i in m["items"]] == ["gone.gpx"]
    body, content_type = bulk_body([("FAVOURITES/gone.gpx", b"back", {})])
    reply = await me.call("POST", "/api/files/bulk", data=body, headers={"Content-Type": content_type})
    assert reply.body["results"][0]["status"] == 201, reply
    assert (await me.call("GET", "/api/trash")).body["total_items"] == 0


async def test_refusals_of_the_request_itself(files, gateway):
    me, session = await files.start_user()
    reply = await me.call("POST", "/api/files/bulk", data=b"FAVOURITES/a.gpx",
                          headers={"Content-Type": "application/octet-stream"})
    assert reply.status == 400 and reply.error_code() == "malformed_body", reply
    assert "multipart/form-data" in reply.body["error"]["message"]
    body, content_type = bulk_body([("FAVOURITES/a.gpx", b"a", {})])
    reply = await me.call("POST", "/api/files/bulk", data=body, headers={"Content-Type": content_type},
                          params={"overwrite": "maybe"})
    assert reply.status == 400 and "overwrite" in reply.body["error"]["message"], reply
    assert (await me.call("GET", "/api/files/bulk")).status == 405
    assert (await gateway.call("POST", "/api/files/bulk", data=body,
                               headers={"Content-Type": content_type})).status == 401
    await files.assert_nothing_held(session["user_id"], 0, 0)
    assert await files.blob_keys(session["user_id"]) == []
