"""Trash through the gateway on the real stack: items from deletes, restore, download, delete
now, empty, the 30-day purge on the shared clock, two replicas purging, metrics."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from pymongo import AsyncMongoClient

from osmcloud_common.clock import set_shared_offset, shared_offset
from osmcloud_localstack.client import eventually, login
from osmcloud_localstack.testing import clock_confirmer, events_of, service_replica


async def start_user(gateway, stack):
    me, session = await login(gateway, stack.smtp_sink_url)
    assert (await me.call("POST", "/api/billing/start")).status == 201

    async def quota_known():
        return (await me.call("GET", "/api/files/usage")).body["quota_bytes"] > 0
    # files takes its events one at a time: right after the replica tests, 300 seeded purge
    # events are ahead of this one (about 2 a second on a loaded 2-core machine)
    await eventually(quota_known, timeout=240, what="files learning the Start quota")
    return me, session["user_id"]


async def trash_items(me) -> dict[str, dict]:
    """Items of the trash page by file name."""
    body = (await me.call("GET", "/api/trash")).body
    return {i["name"]: i for month in body["months"] for i in month["items"]}


async def wait_trashed(me, names: set[str], timeout: float = 30) -> dict[str, dict]:
    async def arrived():
        items = await trash_items(me)
        return items if names <= set(items) else None
    return await eventually(arrived, timeout=timeout, what=f"{len(names)} items in the trash")


class ShiftedClock:
    """Moves the shared test clock from where it stands; back there on exit (other tests share the stack)."""

    def __init__(self, stack) -> None:
        self.mongo = AsyncMongoClient(stack.mongo_url)
        self.base = timedelta(0)
        self.confirm = clock_confirmer(stack)

    async def set(self, offset: timedelta) -> None:
        """Moves the clock `offset` past where it stood when the test began; returns once every
        service reports it applied the move."""
        await self._applied(await set_shared_offset(self.mongo, self.base + offset))

    async def _applied(self, set_at: float) -> None:
        await (self.confirm(set_at) if self.confirm else asyncio.sleep(0.4))

    async def __aenter__(self) -> "ShiftedClock":
        self.base = await shared_offset(self.mongo)  # earlier tests may have moved it
        return self

    async def __aexit__(self, *exc) -> None:
        await self._applied(await set_shared_offset(self.mongo, self.base))
        await self.mongo.close()


# =============================================================================================
# the tests
# =============================================================================================
KiB = 1024


# No spacing between writes to one file: the outbox relay's removal of a published event and
# a write landing meanwhile on the same document are serialized by FerretDB's front end
# (infra/ferretdb/serialize.go; test_mongo_atomicity.py), as MongoDB applies each update
# atomically, so no write is lost. test_read_your_writes.py makes 150 back-to-back writes to one
# file and finds every version and every event.


async def upload(me, file_type: str, name: str, data: bytes) -> str:
    reply = await me.call("PUT", f"/api/files/{file_type}/{name}", data=data, params={"overwrite": "true"})
    assert reply.status == 201, reply
    return reply.body["version_id"]


async def delete_file(me, file_type: str, name: str) -> None:
    reply = await me.call("DELETE", f"/api/files/{file_type}/{name}")
    assert reply.status == 200, reply


async def restore(me, item: dict, status: int = 200):
    reply = await me.call("POST", f"/api/trash/items/{item['id']}/restore")
    assert reply.status == status, reply
    return reply


async def test_download_and_restore_bring_back_the_last_version(stack, gateway, files_data):
    me, user_id = await start_user(gateway, stack)
    first = await upload(me, "FAVOURITES", "places/home.gpx", b"<gpx>v1</gpx>")
    last = await upload(me, "FAVOURITES", "places/home.gpx", b"<gpx>v2, the last one</gpx>")
    await delete_file(me, "FAVOURITES", "places/home.gpx")
    item = (await wait_trashed(me, {"places/home.gpx"}))["places/home.gpx"]
    assert item["last_version_id"] == last and item["size"] == len(b"<gpx>v2, the last one</gpx>")

    # download: a redirect to files' version URL, which the client follows with its token
    got = await me.call("GET", f"/api/trash/items/{item['id']}/download")
    assert got.status == 200 and got.body == b"<gpx>v2, the last one</gpx>", got
    async with gateway.session.get(f"{stack.gateway_url}/api/trash/items/{item['id']}/download",
                                   headers={"Authorization": f"Bearer {me.token}"}, allow_redirects=False) as raw:
        assert raw.status == 307
        assert raw.headers["Location"] == f"/api/files/FAVOURITES/places/home.gpx?version={last}"

    restored = await restore(me, item)
    new_id = restored.body["file"]["version_id"]
    assert new_id not in (first, last) and restored.body["file"]["deleted"] is False
    assert (await me.call("GET", "/api/files/FAVOURITES/places/home.gpx")).body == b"<gpx>v2, the last one</gpx>"
    history = (await me.call("GET", "/api/files/history/FAVOURITES/places/home.gpx")).body["versions"]
    assert history[0]["version_id"] == new_id and history[0]["updatetime"] > history[1]["updatetime"]
    assert await trash_items(me) == {}
    # the restored version has a blob of its own (a server-side copy), not the old one shared
    assert {f"users/{user_id}/{first}", f"users/{user_id}/{last}", f"users/{user_id}/{new_id}"} <= \
        await files_data.blob_keys(user_id)
    usage = (await me.call("GET", "/api/files/usage")).body
    assert usage["used_bytes"] == len(b"<gpx>v2, the last one</gpx>") and usage["file_count"] == 1
    # restoring twice, or what is not in the trash, is a 404
    again = await me.call("POST", f"/api/trash/items/{item['id']}/restore")
    assert again.status == 404 and again.error_code() == "item_not_found"
    restored_events = await events_of(stack, "files", user_id, settle_polls=10,
                                      until=lambda es: [e for e in es if e["type"] == "file-restored"])
    assert [e["data"]["tombstone_version_id"] for e in restored_events if e["type"] == "file-restored"] == [item["id"]]


async def test_restore_over_quota_is_refused_and_the_item_stays(stack, gateway):
    me, _ = await start_user(gateway, stack)
    big = b"x" * (900 * KiB)  # (under 1 MiB: the gateway's auth sub-request still caps bodies at 1 MiB)
    for name in ("a.gpx", "b.gpx", "c.gpx", "e.gpx", "f.gpx"):
        await upload(me, "FAVOURITES", name, big)
    await delete_file(me, "FAVOURITES", "a.gpx")
    item = (await wait_trashed(me, {"a.gpx"}))["a.gpx"]
    await upload(me, "FAVOURITES", "d.gpx", big)  # 4500 KiB of 5 MiB used: a.gpx no longer fits

    refused = await me.call("POST", f"/api/trash/items/{item['id']}/restore")
    assert refused.status == 413, refused
    assert refused.error_code() == "quota_exceeded" and "quota" in refused.body["error"]["message"]
    assert "a.gpx" in await trash_items(me)
    assert (await me.call("GET", "/api/files/FAVOURITES/a.gpx")).status == 404

    await delete_file(me, "FAVOURITES", "d.gpx")
    await restore(me, item)
    assert (await me.call("GET", "/api/files/FAVOURITES/a.gpx")).body == big


async def test_delete_now_removes_versions_and_blobs(stack, gateway, files_data):
    me, user_id = await start_user(gateway, stack)
    kept = await upload(me, "OSM_NOTES", "keep.osn", b"stays")
    v1 = await upload(me, "OSM_NOTES", "gone.osn", b"one")
    v2 = await upload(me, "OSM_NOTES", "gone.osn", b"two")
    await delete_file(me, "OSM_NOTES", "gone.osn")
    item = (await wait_trashed(me, {"gone.osn"}))["gone.osn"]

    reply = await me.call("DELETE", f"/api/trash/items/{item['id']}")
    assert reply.status == 200 and reply.body["purged"] == 1, reply
    assert await trash_items(me) == {}
    await files_data.wait_purged(user_id, "OSM_NOTES", "gone.osn", {f"users/{user_id}/{v1}", f"users/{user_id}/{v2}"})
    assert f"users/{user_id}/{kept}" in await files_data.blob_keys(user_id)
    assert (await me.call("GET", "/api/files/OSM_NOTES/gone.osn", params={"version": v2})).status == 404
    assert (await me.call("DELETE", f"/api/trash/items/{item['id']}")).status == 404
    purged = await events_of(stack, "trash", user_id, settle_polls=10, until=lambda es: es)
    assert [(e["type"], e["data"]["reason"]) for e in purged] == [("trash-item-purged", "deleted")]
    pruned = await events_of(stack, "files", user_id, settle_polls=10,
                             until=lambda es: [e for e in es if e["type"] == "file-versions-pruned"])
    pruned = [e["data"] for e in pruned if e["type"] == "file-versions-pruned"]
    assert len(pruned) == 1 and set(pruned[0]["version_ids"]) == {v1, v2, item["id"]}


async def test_emptying_the_trash_never_brings_anything_back(stack, gateway, files_data):
    me, user_id = await start_user(gateway, stack)
    names = [f"n{i}.osn" for i in range(8)]
    versions = {n: await upload(me, "OSM_NOTES", n, f"note {n}".encode()) for n in names}
    for n in names:
        await delete_file(me, "OSM_NOTES", f"{n}")
    items = await wait_trashed(me, set(names))
    restored, others = names[:3], names[3:]
    for n in restored:
        await restore(me, items[n])

    emptied = await me.call("DELETE", "/api/trash")
    assert emptied.status == 200 and emptied.body["purged"] == len(others) and emptied.body["skipped"] == 0, emptied
    assert await trash_items(me) == {}
    for n in others:
        await files_data.wait_purged(user_id, "OSM_NOTES", n, {f"users/{user_id}/{versions[n]}"})
    listed = {f["name"] for f in (await me.call("GET", "/api/files")).body["files"]}
    assert listed == set(restored)
    for n in restored:
        assert (await me.call("GET", f"/api/files/OSM_NOTES/{n}")).body == f"note {n}".encode()
    events = await events_of(stack, "trash", user_id, settle_polls=10,
                             until=lambda es: len([e for e in es if e["type"] == "trash-item-purged"]) >= 5
                             and any(e["type"] == "trash-emptied" for e in es))
    purged = sorted(e["data"]["name"] for e in events if e["type"] == "trash-item-purged")
    assert purged == sorted(others)
    assert [e["data"]["item_count"] for e in events if e["type"] == "trash-emptied"] == [len(others)]


async def test_items_expire_after_30_days_on_the_shared_clock(stack, gateway, files_data):
    me, user_id = await start_user(gateway, stack)
    keep = await upload(me, "OSM_EDITS", "keep.osc", b"<osmChange/> keep")
    lose = await upload(me, "OSM_EDITS", "lose.osc", b"<osmChange/> lose")
    await upload(me, "OSM_EDITS", "marker.osc", b"<osmChange/> marker")
    async with ShiftedClock(stack) as clock:
        # a marker item deleted one day before the others: once it is purged, a purge round has
        # run at a time when the others were 29 days old, so their presence proves the rule
        await delete_file(me, "OSM_EDITS", "marker.osc")
        await clock.set(timedelta(days=1))
        for name in ("keep.osc", "lose.osc"):
            await delete_file(me, "OSM_EDITS", f"{name}")
        items = await trash_items(me)
        assert {"keep.osc", "lose.osc", "marker.osc"} <= set(items)
        await clock.set(timedelta(days=30, minutes=1))

        async def marker_purged():
            return "marker.osc" not in await trash_items(me)
        # every earlier test's trash expires at once here: allow for purging them all
        await eventually(marker_purged, timeout=180, what="the marker item leaving the trash")
        assert set(await trash_items(me)) == {"keep.osc", "lose.osc"}  # 29 days old: kept
        await restore(me, items["keep.osc"])

        await clock.set(timedelta(days=31, minutes=1))

        async def expired():
            return await trash_items(me) == {}
        await eventually(expired, timeout=60, what="the expired item leaving the trash")
        await files_data.wait_purged(user_id, "OSM_EDITS", "lose.osc", {f"users/{user_id}/{lose}"})
    assert (await me.call("GET", "/api/files/OSM_EDITS/keep.osc")).body == b"<osmChange/> keep"
    assert f"users/{user_id}/{keep}" in await files_data.blob_keys(user_id)
    events = await events_of(stack, "trash", user_id, settle_polls=10, until=lambda es: len(es) >= 2)
    assert sorted((e["data"]["name"], e["data"]["reason"]) for e in events) == \
        [("lose.osc", "expired"), ("marker.osc", "expired")]


# ---- several replicas -------------------------------------------------------------------------
@pytest.fixture
async def second_trash(stack, tmp_path):
    """A second trash process on the same database and Kafka (what a scaled deployment runs)."""
    async def ready(session, url):
        async with session.get(f"{url}/readyz") as r:
            return r.status == 200
    async with service_replica(stack, "trash", tmp_path / "trash-2.log", ready,
                               extra_env={"PURGE_BATCH_SIZE": "25"}) as url:
        yield url


def _seed_item(user_id: str, n: int, expired_at: datetime) -> dict:
    return {"_id": uuid.uuid4().hex, "user_id": user_id, "type": "OSM_NOTES", "name": f"seeded/{n}.osn",
            "category": "my_places", "size": 10, "last_version_id": uuid.uuid4().hex,
            "deleted_at": expired_at - timedelta(days=30), "expires_at": expired_at}


async def test_two_replicas_purge_each_expired_item_exactly_once(stack, second_trash):
    user_id = f"replicas-{uuid.uuid4().hex[:10]}"
    mongo = AsyncMongoClient(stack.mongo_url, tz_aware=True)
    items = mongo[f"{stack.db_prefix}trash"]["items"]
    try:
        # seeded straight into trash's database: 300 items whose 30 days are over
        now = datetime.now(UTC)
        seeded = [_seed_item(user_id, n, now - timedelta(minutes=1)) for n in range(300)]
        await items.insert_many(seeded)
        ids = {s["_id"] for s in seeded}

        events = await events_of(stack, "trash", user_id, settle_polls=10, timeout=90,
                                 until=lambda es: {e["data"]["tombstone_version_id"] for e in es} >= ids)
        # one purge per item = one event id per item. (The same event may be published twice:
        # both replicas' outbox relays can find a batch still pending - at-least-once
        # delivery, same id, which consumers skip. Two purges would carry two ids.)
        per_item: dict[str, set[str]] = {}
        for e in events:
            per_item.setdefault(e["data"]["tombstone_version_id"], set()).add(e["id"])
        assert {i: len(ev) for i, ev in per_item.items()} == {i: 1 for i in ids}, "every item purged exactly once"
        assert {e["data"]["reason"] for e in events} == {"expired"}
        # the events are written before the items and claims go (a crash in between re-emits
        # nothing: the batch document exists), so those follow shortly after the events

        async def all_gone():
            return (await items.count_documents({"user_id": user_id}) == 0 and
                    await mongo[f"{stack.db_prefix}trash"]["claims"].count_documents({"user_id": user_id}) == 0)
        await eventually(all_gone, timeout=60, what="purged items and their claims removed")
    finally:
        await items.delete_many({"user_id": user_id})
        await mongo.close()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{second_trash}/metrics") as r:
            metrics = await r.text()
    assert "trash_items_purged_total" in metrics and "trash_purge_lag_seconds_bucket" in metrics
    assert "\ntrash_items " in metrics


async def test_a_purge_left_halfway_by_a_dead_replica_is_completed(stack):
    """A claim without its batch (the claimer died in between) is completed once its lease ends."""
    user_id = f"crashed-{uuid.uuid4().hex[:10]}"
    mongo = AsyncMongoClient(stack.mongo_url, tz_aware=True)
    db = mongo[f"{stack.db_prefix}trash"]
    try:
        item = _seed_item(user_id, 1, datetime.now(UTC) + timedelta(days=10))  # not due: only the claim purges it
        await db["items"].insert_one(item)
        await db["claims"].insert_one({
            "_id": item["_id"], "user_id": user_id, "action": "purge", "batch_id": uuid.uuid4().hex,
            "claimed_by": "trash-dead", "claimed_at": datetime.now(UTC) - timedelta(hours=1), "reason": "deleted",
            "file_type": item["type"], "name": item["name"], "expires_at": item["expires_at"]})
        events = await events_of(stack, "trash", user_id, settle_polls=10, until=lambda es: es)
        assert [(e["data"]["tombstone_version_id"], e["data"]["reason"]) for e in events] == [(item["_id"], "deleted")]
        assert await db["items"].count_documents({"user_id": user_id}) == 0
    finally:
        await db["items"].delete_many({"user_id": user_id})
        await db["claims"].delete_many({"user_id": user_id})
        await mongo.close()


async def test_delete_all_my_data_empties_the_trash(stack, gateway):
    """files' 'delete all my data' says everything=true in file-versions-pruned; trash drops the items."""
    from aiokafka import AIOKafkaProducer

    from osmcloud_common.events import FileVersionsPruned, make_event

    me, user_id = await start_user(gateway, stack)
    await upload(me, "PROFILE", "car.osf", b"{car}")
    await delete_file(me, "PROFILE", "car.osf")
    await wait_trashed(me, {"car.osf"})
    event = make_event(FileVersionsPruned(version_ids=[], freed_bytes=0, everything=True), user_id=user_id,
                       producer="files", occurred_at=datetime.now(UTC))
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    await producer.start()
    try:
        for _ in range(2):  # delivered twice: still one effect
            await producer.send_and_wait(f"{stack.topic_prefix}files", event.to_json().encode(), key=user_id.encode())
    finally:
        await producer.stop()

    async def emptied():
        return await trash_items(me) == {}
    await eventually(emptied, what="the trash dropping the account's items")


async def test_bad_trash_requests_are_4xx(stack, gateway):
    me, _ = await start_user(gateway, stack)
    for method, path in [("POST", "/api/trash/items/nope/restore"), ("DELETE", "/api/trash/items/nope"),
                         ("GET", "/api/trash/items/nope/download")]:
        reply = await me.call(method, path)
        assert reply.status == 404 and reply.error_code() == "item_not_found", (method, path, reply)
    empty = await me.call("DELETE", "/api/trash")
    assert empty.status == 200 and empty.body["purged"] == 0
    other, _ = await start_user(gateway, stack)
    await upload(me, "GLOBAL", "settings.json", b"{}")
    await delete_file(me, "GLOBAL", "settings.json")
    item = (await wait_trashed(me, {"settings.json"}))["settings.json"]
    for method, path in [("POST", f"/api/trash/items/{item['id']}/restore"),
                         ("DELETE", f"/api/trash/items/{item['id']}"),
                         ("GET", f"/api/trash/items/{item['id']}/download")]:
        assert (await other.call(method, path)).status == 404, "another account's item is not found"
    assert "settings.json" in await trash_items(me)
