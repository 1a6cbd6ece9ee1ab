"""Versions: every upload a new version, history, download by version, deleting one version
for good, the conflict rule under a real race, and uploading to a deleted name."""

import asyncio
import hashlib

MIB = 1024 * 1024
PATH = "/api/files/FAVOURITES/favourites.gpx"


async def upload(me, path, body, **params):
    return await me.call("PUT", path, data=body, params={k: str(v) for k, v in params.items()} or None)


async def test_versions_history_download_and_deleting_one_version(files):
    me, session = await files.start_user()
    user = session["user_id"]
    bodies = [b"first " * 100, b"second " * 200, b"third " * 300]
    ids = []
    for i, body in enumerate(bodies):
        reply = await upload(me, PATH, body, **({"base_version": ids[-1]} if ids else {}), clienttime=1000 + i)
        assert reply.status == 201, reply
        assert reply.body["checksum"] == "sha256:" + hashlib.sha256(body).hexdigest()
        assert reply.body["clienttime"] == 1000 + i and reply.body["device_id"] == session["device_id"]
        ids.append(reply.body["version_id"])

    history = (await me.call("GET", "/api/files/history/FAVOURITES/favourites.gpx")).body["versions"]
    assert [v["version_id"] for v in history] == ids[::-1]
    assert [v["size"] for v in history] == [len(b) for b in bodies[::-1]]
    times = [v["updatetime"] for v in history]
    assert times == sorted(times, reverse=True) and len(set(times)) == 3
    for version_id, body in zip(ids, bodies, strict=True):
        got = await me.call("GET", PATH, params={"version": version_id})
        assert got.status == 200 and got.body == body
    assert (await me.call("GET", PATH)).body == bodies[2]
    assert (await me.call("GET", PATH, params={"version": "nope"})).status == 404
    await files.assert_nothing_held(user, len(bodies[2]), 1)  # usage counts the newest version only
    assert len(await files.blob_keys(user)) == 3

    # an old version: gone for good, the head stays
    reply = await me.call("DELETE", PATH, params={"version": ids[0]})
    assert reply.status == 200, reply
    assert reply.body["head"]["version_id"] == ids[2]
    assert (await me.call("GET", PATH, params={"version": ids[0]})).status == 404
    assert f"users/{user}/{ids[0]}" not in await files.blob_keys(user)
    await files.assert_nothing_held(user, len(bodies[2]), 1)

    # the head: the version before it becomes the head, usage follows
    reply = await me.call("DELETE", PATH, params={"version": ids[2]})
    assert reply.status == 200, reply
    assert reply.body["head"]["version_id"] == ids[1]
    assert (await me.call("GET", PATH)).body == bodies[1]
    listed = (await me.call("GET", "/api/files")).body["files"]
    assert [(f["name"], f["version_id"]) for f in listed] == [("favourites.gpx", ids[1])]
    await files.assert_nothing_held(user, len(bodies[1]), 1)
    assert await files.blob_keys(user) == [f"users/{user}/{ids[1]}"]

    # the only version left: no file any more, no usage, no blob; the name is free again
    reply = await me.call("DELETE", PATH, params={"version": ids[1]})
    assert reply.status == 200 and reply.body["head"] is None, reply
    assert (await me.call("GET", PATH)).status == 404
    assert (await me.call("GET", "/api/files/history/FAVOURITES/favourites.gpx")).status == 404
    assert (await me.call("GET", "/api/files")).body["files"] == []
    await files.assert_nothing_held(user, 0, 0)
    assert await files.blob_keys(user) == []
    assert (await me.call("DELETE", PATH, params={"version": ids[1]})).status == 404
    again = await upload(me, PATH, b"fresh start")
    assert again.status == 201, again

    pruned = await files.events("files", user, lambda evs: sum(e["type"] == "file-versions-pruned" for e in evs) >= 3)
    removed = [e["data"]["version_ids"] for e in pruned if e["type"] == "file-versions-pruned"]
    assert removed == [[ids[0]], [ids[2]], [ids[1]]]


async def test_deleting_the_head_brings_back_a_delete_marker_and_the_trash_item(files):
    me, session = await files.start_user()
    first = await upload(me, PATH, b"v1")
    assert (await me.call("DELETE", PATH)).status == 200
    back = await upload(me, PATH, b"v2-back-from-the-trash")
    assert back.status == 201, back  # uploading to a deleted name brings it back as a new version
    history = (await me.call("GET", "/api/files/history/FAVOURITES/favourites.gpx")).body["versions"]
    assert [v["deleted"] for v in history] == [False, True, False]
    assert [v["version_id"] for v in history][2] == first.body["version_id"]
    await files.assert_nothing_held(session["user_id"], len(b"v2-back-from-the-trash"), 1)

    async def trash_items():
        return (await me.call("GET", "/api/trash")).body["total_items"]
    # removing the re-upload: the file reads as deleted again, as before that upload
    assert (await me.call("DELETE", PATH, params={"version": back.body["version_id"]})).status == 200
    assert (await me.call("GET", PATH)).status == 404
    assert (await me.call("GET", "/api/files")).body["files"] == []
    await files.assert_nothing_held(session["user_id"], 0, 0)

    async def listed_again():
        return await trash_items() == 1
    from osmcloud_localstack.client import eventually
    await eventually(listed_again, what="the file listed in the trash again")


async def test_no_silent_overwrite(files):
    me, _ = await files.start_user()
    created = await upload(me, PATH, b"one")
    head = created.body["version_id"]
    exists = await upload(me, PATH, b"two")
    assert exists.status == 409 and exists.error_code() == "version_conflict", exists
    assert exists.body["error"]["head"]["version_id"] == head
    stale = await upload(me, PATH, b"two", base_version="not-the-head")
    assert stale.status == 409 and stale.body["error"]["head"]["version_id"] == head
    by_header = await me.call("PUT", PATH, data=b"two", headers={"If-Match": f'"{head}"'})
    assert by_header.status == 201, by_header
    forced = await upload(me, PATH, b"three", overwrite="true")
    assert forced.status == 201, forced
    assert (await me.call("GET", PATH)).body == b"three"


async def test_two_devices_racing_on_one_file_exactly_one_wins(files):
    phone, session = await files.start_user("phone")
    tablet = await files.second_device(session, "tablet")
    user = session["user_id"]
    head = (await upload(phone, PATH, b"base")).body["version_id"]
    for round_no in range(15):
        bodies = {phone: f"phone {round_no}".encode() * 50, tablet: f"tablet {round_no}".encode() * 70}
        replies = await asyncio.gather(*(upload(device, PATH, body, base_version=head)
                                         for device, body in bodies.items()))
        statuses = sorted(r.status for r in replies)
        assert statuses == [201, 409], (round_no, replies)
        winner = next(r for r in replies if r.status == 201)
        loser = next(r for r in replies if r.status == 409)
        assert loser.error_code() == "version_conflict"
        assert loser.body["error"]["head"]["version_id"] == winner.body["version_id"]
        head = winner.body["version_id"]
        winning_device = phone if winner.body["size"] == len(bodies[phone]) else tablet
        assert (await phone.call("GET", PATH)).body == bodies[winning_device]
    history = (await phone.call("GET", "/api/files/history/FAVOURITES/favourites.gpx")).body["versions"]
    assert len(history) == 16  # the base and one winner per round: losers stored nothing
    assert len(await files.blob_keys(user)) == 16
    await files.assert_nothing_held(user, history[0]["size"], 1)
