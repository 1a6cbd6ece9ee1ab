"""Account-wide calls: the storage page, backup switches, delete old versions, delete all my
data, delete a type from the cloud, and the changes feed between two devices."""

from osmcloud_common.events import Entitlement
from osmcloud_localstack.client import eventually

MIB = 1024 * 1024
PRO = Entitlement(plan="pro", quota_bytes=3000 * MIB, allowed_types=None)


async def put(me, path, body, **params):
    reply = await me.call("PUT", path, data=body, params={k: str(v) for k, v in params.items()} or None)
    assert reply.status == 201, reply
    return reply.body


async def test_storage_page_and_backup_switches(files):
    me, _ = await files.start_user()
    await put(me, "/api/files/FAVOURITES/home.gpx", b"f" * 1000)
    await put(me, "/api/files/FAVOURITES/work.gpx", b"f" * 500)
    await put(me, "/api/files/GLOBAL/settings.json", b"g" * 300)
    old = await put(me, "/api/files/PROFILE/car.json", b"p" * 4000)
    await put(me, "/api/files/PROFILE/car.json", b"p" * 200, base_version=old["version_id"])  # newest counts

    page = (await me.call("GET", "/api/files/storage")).body
    assert (page["used_bytes"], page["file_count"], page["quota_bytes"]) == (2000, 4, 5 * MIB)
    assert page["free_bytes"] == 5 * MIB - 2000 and page["plan"] == "start"
    categories = {c["category"]: (c["used_bytes"], c["file_count"]) for c in page["categories"]}
    assert categories == {"settings": (500, 2), "my_places": (1500, 2), "resources": (0, 0)}
    types = {t["type"]: t for t in page["types"]}
    assert (types["FAVOURITES"]["used_bytes"], types["FAVOURITES"]["file_count"]) == (1500, 2)
    assert (types["PROFILE"]["used_bytes"], types["GPX"]["used_bytes"]) == (200, 0)
    assert types["GPX"]["allowed_by_plan"] is False and types["GLOBAL"]["allowed_by_plan"] is True
    assert all(t["backup_enabled"] for t in page["types"])

    off = await me.call("PUT", "/api/files/backup-types/FAVOURITES", json={"enabled": False})
    assert off.status == 200 and off.body == {"type": "FAVOURITES", "category": "my_places", "enabled": False}
    refused = await me.call("PUT", "/api/files/FAVOURITES/new.gpx", data=b"x")
    assert refused.status == 409 and refused.error_code() == "backup_disabled", refused
    assert "switched off" in refused.body["error"]["message"]
    # stored data stays: listed, downloadable, counted
    assert (await me.call("GET", "/api/files/FAVOURITES/home.gpx")).body == b"f" * 1000
    assert len((await me.call("GET", "/api/files", params={"types": "FAVOURITES"})).body["files"]) == 2
    switches = {t["type"]: t["enabled"] for t in (await me.call("GET", "/api/files/backup-types")).body["types"]}
    assert switches["FAVOURITES"] is False and switches["GLOBAL"] is True
    assert (await me.call("GET", "/api/files/storage")).body["used_bytes"] == 2000
    assert (await me.call("PUT", "/api/files/backup-types/FAVOURITES", json={"enabled": True})).status == 200
    assert (await me.call("PUT", "/api/files/FAVOURITES/new.gpx", data=b"x")).status == 201
    bad = await me.call("PUT", "/api/files/backup-types/NOPE", json={"enabled": True})
    assert bad.status == 400
    assert (await me.call("PUT", "/api/files/backup-types/GPX", json={"enabled": "maybe"})).status == 400


async def test_delete_old_versions_keeps_heads_and_the_trash(files):
    me, session = await files.user_with(PRO)
    user = session["user_id"]
    heads = {}
    for name, file_type in (("a.gpx", "GPX"), ("b.gpx", "GPX"), ("n.osn", "OSM_NOTES")):
        v = None
        for i in range(3):
            v = await put(me, f"/api/files/{file_type}/{name}", f"{name} v{i}".encode() * 10,
                          **({"base_version": v["version_id"]} if v else {}))
        heads[name] = v["version_id"]
    trashed = await put(me, "/api/files/GPX/old.gpx", b"old v0")
    await put(me, "/api/files/GPX/old.gpx", b"old v1", base_version=trashed["version_id"])
    assert (await me.call("DELETE", "/api/files/GPX/old.gpx")).status == 200
    before = len(await files.blob_keys(user))
    assert before == 11

    only_gpx = await me.call("POST", "/api/files/prune", params={"type": "GPX"})
    assert only_gpx.status == 200 and only_gpx.body["removed_versions"] == 4, only_gpx
    assert len((await me.call("GET", "/api/files/history/GPX/a.gpx")).body["versions"]) == 1
    assert len((await me.call("GET", "/api/files/history/OSM_NOTES/n.osn")).body["versions"]) == 3
    # the file in the trash keeps its versions until the trash purges them
    assert len((await me.call("GET", "/api/files/history/GPX/old.gpx")).body["versions"]) == 3
    everything = await me.call("POST", "/api/files/prune")
    assert everything.body["removed_versions"] == 2
    keys = await files.blob_keys(user)
    assert sorted(keys) == sorted([f"users/{user}/{v}" for v in heads.values()] +
                                  [f"users/{user}/{v['_id']}" for v in await files.versions(user)
                                   if v["name"] == "old.gpx" and not v.get("deleted")])
    for name, file_type in (("a.gpx", "GPX"), ("n.osn", "OSM_NOTES")):
        assert (await me.call("GET", f"/api/files/{file_type}/{name}")).body == f"{name} v2".encode() * 10
    listed = (await me.call("GET", "/api/files")).body["files"]
    await files.assert_nothing_held(user, sum(f["size"] for f in listed), 3)
    events = await files.events("files", user, lambda evs: sum(e["type"] == "file-versions-pruned" for e in evs) >= 2)
    pruned = [e["data"] for e in events if e["type"] == "file-versions-pruned"]
    assert [(p["file_type"], len(p["version_ids"])) for p in pruned] == [("GPX", 4), (None, 2)]


async def test_delete_all_my_data(files):
    phone, session = await files.user_with(PRO)
    user = session["user_id"]
    for i in range(4):
        await put(phone, f"/api/files/GPX/t{i}.gpx", b"track" * (i + 1))
    await put(phone, "/api/files/GPX/t0.gpx", b"again", overwrite="true")
    assert (await phone.call("DELETE", "/api/files/GPX/t1.gpx")).status == 200
    cursor = (await phone.call("GET", "/api/files/changes")).body["cursor"]

    reply = await phone.call("DELETE", "/api/files")
    assert reply.status == 200 and reply.body["removed_versions"] == 6, reply  # 4 + 1 newer + 1 delete marker
    assert await files.blob_keys(user) == [] and await files.versions(user) == []
    assert (await phone.call("GET", "/api/files")).body["files"] == []
    assert (await phone.call("GET", "/api/files/history/GPX/t0.gpx")).status == 404
    await files.assert_nothing_held(user, 0, 0)
    feed = (await phone.call("GET", "/api/files/changes", params={"cursor": cursor})).body
    assert feed["reset"] is True and feed["changes"] == []  # devices must list again
    events = await files.events("files", user, lambda evs: any(
        e["type"] == "file-versions-pruned" and e["data"]["everything"] for e in evs))
    usage = [e for e in events if e["type"] == "storage-usage-changed"]
    assert usage[-1]["data"]["used_bytes"] == 0 and usage[-1]["data"]["file_count"] == 0
    # the account goes on: new uploads work, and the feed continues from the new cursor
    await put(phone, "/api/files/GPX/fresh.gpx", b"new life")
    after = (await phone.call("GET", "/api/files/changes", params={"cursor": feed["cursor"]})).body
    assert [(c["kind"], c["name"]) for c in after["changes"]] == [("uploaded", "fresh.gpx")]


async def test_delete_a_type_from_the_cloud_sends_its_files_to_the_trash(files):
    me, session = await files.user_with(PRO)
    user = session["user_id"]
    for name in ("a.gpx", "b.gpx", "c.gpx"):
        await put(me, f"/api/files/GPX/{name}", name.encode() * 100)
    await put(me, "/api/files/FAVOURITES/fav.gpx", b"stays")
    assert (await me.call("DELETE", "/api/files/GPX/c.gpx")).status == 200  # already in the trash

    reply = await me.call("DELETE", "/api/files/types/GPX")
    assert reply.status == 200 and reply.body == {"type": "GPX", "deleted": 2, "skipped": []}, reply
    assert [f["name"] for f in (await me.call("GET", "/api/files")).body["files"]] == ["fav.gpx"]
    await files.assert_nothing_held(user, len(b"stays"), 1)
    events = await files.events("files", user, lambda evs: sum(e["type"] == "file-deleted" for e in evs) >= 3)
    assert sorted(e["data"]["name"] for e in events if e["type"] == "file-deleted") == ["a.gpx", "b.gpx", "c.gpx"]

    async def in_trash():
        trash = (await me.call("GET", "/api/trash")).body
        return trash if trash["total_items"] == 3 else None
    await eventually(in_trash, what="the trash holding the deleted type")
    assert (await me.call("DELETE", "/api/files/types/NOPE")).status == 400


async def test_changes_feed_between_two_devices(files):
    phone, session = await files.user_with(PRO, device="phone")
    tablet = await files.second_device(session, "tablet")
    start = (await tablet.call("GET", "/api/files/changes")).body
    assert start["changes"] == [] and start["reset"] is False

    a1 = await put(phone, "/api/files/GPX/a.gpx", b"a1")
    b1 = await put(phone, "/api/files/GPX/b.gpx", b"b1")
    a2 = await put(phone, "/api/files/GPX/a.gpx", b"a2", base_version=a1["version_id"])
    assert (await phone.call("DELETE", "/api/files/GPX/b.gpx")).status == 200
    c1 = await put(tablet, "/api/files/FAVOURITES/c.gpx", b"c1")

    seen = (await tablet.call("GET", "/api/files/changes", params={"cursor": start["cursor"]})).body
    kinds = [(c["kind"], c["name"], c["device_id"]) for c in seen["changes"]]
    assert kinds == [("uploaded", "a.gpx", session["device_id"]), ("uploaded", "b.gpx", session["device_id"]),
                     ("uploaded", "a.gpx", session["device_id"]), ("deleted", "b.gpx", session["device_id"]),
                     ("uploaded", "c.gpx", c1["device_id"])]
    assert [c["version_id"] for c in seen["changes"][:3]] == [a1["version_id"], b1["version_id"], a2["version_id"]]
    assert [c["seq"] for c in seen["changes"]] == sorted(c["seq"] for c in seen["changes"])
    assert seen["more"] is False

    # paging: two at a time gives the same changes
    cursor, paged = start["cursor"], []
    while True:
        page = (await tablet.call("GET", "/api/files/changes", params={"cursor": cursor, "limit": "2"})).body
        paged += page["changes"]
        cursor = page["cursor"]
        if not page["more"]:
            break
    assert [c["seq"] for c in paged] == [c["seq"] for c in seen["changes"]]

    # nothing new: same cursor back; a version deleted for good shows as a head change
    again = (await tablet.call("GET", "/api/files/changes", params={"cursor": seen["cursor"]})).body
    assert again["changes"] == [] and again["cursor"] == seen["cursor"]
    assert (await phone.call("DELETE", "/api/files/GPX/a.gpx", params={"version": a2["version_id"]})).status == 200
    reverted = (await tablet.call("GET", "/api/files/changes", params={"cursor": seen["cursor"]})).body["changes"]
    assert [(c["kind"], c["name"], c["head"]["version_id"]) for c in reverted] == [
        ("head_changed", "a.gpx", a1["version_id"])]
    assert (await tablet.call("GET", "/api/files/changes", params={"cursor": "garbage"})).status == 400
    assert (await tablet.call("GET", "/api/files/changes", params={"limit": "0"})).status == 400


async def test_the_feed_pages_over_change_numbers_left_without_a_change(files):
    """Versions deleted for good leave their change numbers empty: a call reads a bounded
    window of numbers (widened while it is sparse), so a page may be short while `more` is
    true, but paging still brings every remaining change once, in order, and stops."""
    me, _ = await files.user_with(PRO)
    first = await put(me, "/api/files/GPX/a.gpx", b"a0")
    kept, removed, base = [first], [], first["version_id"]
    for i in range(1, 12):
        version = await put(me, "/api/files/GPX/a.gpx", f"a{i}".encode(), base_version=base)
        base = version["version_id"]
        (removed if 1 <= i <= 9 else kept).append(version)
    for version in removed:  # old versions, not the head: removed without a change of their own
        reply = await me.call("DELETE", "/api/files/GPX/a.gpx", params={"version": version["version_id"]})
        assert reply.status == 200, reply
    cursor, seen, pages = None, [], 0
    while True:
        page = (await me.call("GET", "/api/files/changes",
                              params={"limit": "1", **({"cursor": cursor} if cursor else {})})).body
        assert len(page["changes"]) <= 1
        seen += [c["version_id"] for c in page["changes"]]
        cursor, pages = page["cursor"], pages + 1
        if not page["more"]:
            break
        assert pages < 20
    assert seen == [v["version_id"] for v in kept]
    assert (await me.call("GET", "/api/files/changes", params={"cursor": cursor})).body["changes"] == []
