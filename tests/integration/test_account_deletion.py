"""Deleting an account: a fresh deletion code (a login code does not count); then every device
is logged out at once, and auth, files, trash and billing hold nothing of the user — no
document that mentions the user id in any field, no blob in the bucket — while another user's
data is untouched. A repeated `account-deleted` changes nothing."""

import json
import re
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from minio import Minio
from pymongo import AsyncMongoClient

from osmcloud_localstack.client import GatewayClient, count_mails, eventually, login, read_code
from osmcloud_localstack.testing import advance_clock

SERVICES = ("auth", "files", "trash", "billing")
RESEND_SECONDS = 30
START_FILES = {  # Start allows FAVOURITES, GLOBAL, PROFILE, OSM_EDITS, OSM_NOTES
    "FAVOURITES/favourites.gpx": b'<gpx><wpt lat="52.1" lon="4.3"><name>Home</name></wpt></gpx>',
    "GLOBAL/settings.json": b'{"units": "km"}',
    "PROFILE/car.json": b'{"profile": "car"}',
    "OSM_EDITS/edits.osc": b"<osmChange/>",
    "OSM_NOTES/notes.osn": b"note: bench is broken",
}


@pytest.fixture
async def mongo(stack):
    client = AsyncMongoClient(stack.mongo_url, tz_aware=True)
    yield client
    await client.close()


def mentions(value, needle: str) -> bool:
    """True if `needle` occurs anywhere in a document: any key, any value, inside strings too."""
    if isinstance(value, str):
        return needle in value
    if isinstance(value, bytes):
        return needle.encode() in value
    if isinstance(value, dict):
        return any(mentions(k, needle) or mentions(v, needle) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(mentions(v, needle) for v in value)
    return needle in str(value) if not isinstance(value, (int, float, bool, type(None))) else False


async def documents_mentioning(stack, mongo, needle: str) -> dict[str, list[dict]]:
    """Every document of every collection of every database on the server (processed-event
    records and dead letters included, no exclusions) that mentions `needle`."""
    found: dict[str, list[dict]] = {}
    for db_name in await mongo.list_database_names():
        db = mongo[db_name]
        for name in await db.list_collection_names():
            async for doc in db[name].find({}):
                if mentions(doc, needle):
                    service = db_name.removeprefix(stack.db_prefix)
                    found.setdefault(f"{service}.{name}", []).append(doc)
    return found


def blobs_mentioning(stack, needle: str) -> list[str]:
    s3 = Minio(stack.s3_endpoint, access_key=stack.s3_access_key, secret_key=stack.s3_secret_key,
               secure=stack.s3_secure)
    return [o.object_name for o in s3.list_objects(stack.s3_bucket, recursive=True) if needle in o.object_name]


VOLATILE = ("_outbox", "last_seen_at")  # pending events come and go; a device's last use moves
# the listing a files process saves when an account is listed (listing.py): a copy of the heads,
# written by a read — not data of the account's own that a deletion of another could touch
CACHES = ("files.listings",)


def as_data(found: dict[str, list[dict]]) -> dict[str, list[dict]]:
    return {where: sorted(({k: v for k, v in d.items() if not k.startswith(VOLATILE)} for d in docs),
                          key=lambda d: str(d["_id"]))
            for where, docs in found.items() if where not in CACHES}


async def deletion_event(stack, user_id: str) -> dict:
    consumer = AIOKafkaConsumer(f"{stack.topic_prefix}auth", bootstrap_servers=stack.kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=f"test-{uuid.uuid4().hex}")
    await consumer.start()
    try:
        found: list[dict] = []

        async def probe():
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                found.extend(e for e in (json.loads(m.value) for m in messages)
                             if e["user_id"] == user_id and e["type"] == "account-deleted")
            return found
        return (await eventually(probe, timeout=20, what="account-deleted on the auth topic"))[0]
    finally:
        await consumer.stop()


async def settled(stack, mongo, user_id: str) -> bool:
    """No event of the user is waiting to be published, and billing has files' latest usage."""
    for service in SERVICES:
        db = mongo[f"{stack.db_prefix}{service}"]
        for name in await db.list_collection_names():
            if await db[name].find_one({"user_id": user_id, "_outbox_pending": True}):
                return False
    files = await mongo[f"{stack.db_prefix}files"]["accounts"].find_one({"_id": user_id})
    billing = await mongo[f"{stack.db_prefix}billing"]["accounts"].find_one({"_id": user_id})
    return bool(files and billing and (billing.get("usage") or {}).get("sequence") == files["usage_seq"])


async def start_with_quota(client: GatewayClient) -> None:
    assert (await client.call("POST", "/api/billing/start")).status == 201

    async def quota_known():
        return (await client.call("GET", "/api/files/usage")).body["quota_bytes"] > 0
    await eventually(quota_known, what="files learning the Start quota")


async def trash_count(client: GatewayClient, count: int) -> None:
    async def probe():
        return (await client.call("GET", "/api/trash")).body["total_items"] == count
    await eventually(probe, what=f"{count} trash item(s)")


async def test_deleting_an_account_leaves_nothing_of_it_anywhere(stack, gateway, mongo, smtp):
    # ---- another user, whose data must stay exactly as it is
    bob, bob_session = await login(gateway, stack.smtp_sink_url)
    await start_with_quota(bob)
    assert (await bob.call("PUT", "/api/files/FAVOURITES/bob.gpx", data=b"<gpx>bob</gpx>")).status == 201
    assert (await bob.call("PUT", "/api/files/GLOBAL/bob.json", data=b"{}")).status == 201
    assert (await bob.call("DELETE", "/api/files/GLOBAL/bob.json")).status == 200
    await trash_count(bob, 1)

    # ---- the account to delete: two devices, files of five types, old versions, trash, Start
    email = f"leaving-{uuid.uuid4().hex[:10]}@example.test"
    phone, session = await login(gateway, stack.smtp_sink_url, email=email, device={"name": "phone"})
    await advance_clock(stack, RESEND_SECONDS + 1)
    tablet, _ = await login(gateway, stack.smtp_sink_url, email=email, device={"name": "tablet"})
    user_id = session["user_id"]
    await start_with_quota(phone)
    for path, body in START_FILES.items():
        reply = await phone.call("PUT", f"/api/files/{path}", data=body)
        assert reply.status == 201, (path, reply)
    for n in range(2):  # two more versions of the favourites: old versions stay in history
        reply = await tablet.call("PUT", "/api/files/FAVOURITES/favourites.gpx", data=b"<gpx>v%d</gpx>" % n,
                                  params={"overwrite": "true"})
        assert reply.status == 201, reply
    history = await phone.call("GET", "/api/files/history/FAVOURITES/favourites.gpx")
    assert len(history.body["versions"]) == 3
    assert (await phone.call("DELETE", "/api/files/OSM_NOTES/notes.osn")).status == 200
    assert (await phone.call("GET", "/api/files")).status == 200  # files saves the listing: erased with the rest
    await trash_count(phone, 1)

    async def usage_in_billing():
        return (await phone.call("GET", "/api/billing/account")).body["usage"] is not None
    await eventually(usage_in_billing, what="usage reaching billing")
    await eventually(lambda: settled(stack, mongo, bob_session["user_id"]), what="Bob's events all applied")

    # an event about the user that no consumer can read: every service sets it aside, whole
    # (e-mail included), in its dead letters
    poison = {"id": uuid.uuid4().hex, "type": "account-registered", "user_id": user_id, "data": {"email": email}}
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(f"{stack.topic_prefix}auth", json.dumps(poison).encode(), key=user_id.encode())
    finally:
        await producer.stop()

    async def poison_set_aside():
        return all([await mongo[f"{stack.db_prefix}{s}"]["dead_letters"].find_one({"raw": {"$regex": poison["id"]}})
                    for s in SERVICES])
    await eventually(poison_set_aside, what="every service setting the unreadable event aside")

    # the scan can see the user: every service holds something of them, and the bucket too
    before = await documents_mentioning(stack, mongo, user_id)
    assert {where.split(".")[1] for where in before} >= {"processed_events", "dead_letters"}, sorted(before)
    assert {where.split(".")[0] for where in before} == set(SERVICES), sorted(before)
    assert len(blobs_mentioning(stack, user_id)) == 7  # 5 files + 2 newer versions
    bob_before = as_data(await documents_mentioning(stack, mongo, bob_session["user_id"]))
    bob_blobs = blobs_mentioning(stack, bob_session["user_id"])

    # ---- a login code does not confirm a deletion; a deletion code needs asking for
    await advance_clock(stack, RESEND_SECONDS + 1)
    assert (await phone.call("POST", "/api/auth/login-codes", json={"email": email})).status == 202
    login_code = await read_code(gateway.session, stack.smtp_sink_url, email, after=2)
    refused = await phone.call("POST", "/api/auth/account/delete", json={"code": login_code})
    assert refused.status == 400 and refused.error_code() == "code_unknown", refused
    assert "deletion-codes" in refused.body["error"]["message"]
    assert (await phone.call("GET", "/api/auth/account")).status == 200

    asked = await phone.call("POST", "/api/auth/account/deletion-codes")
    assert asked.status == 202, asked
    mail = await smtp.wait_for(email, count=4)
    assert "deleting" in mail["subject"].lower()
    code = re.search(r"\b(\d{12})\b", mail["body"]).group(1)
    wrong = await phone.call("POST", "/api/auth/account/delete",
                             json={"code": str((int(code) + 1) % 10**12).zfill(12)})
    assert wrong.status == 400 and wrong.error_code() == "code_wrong"
    missing = await phone.call("POST", "/api/auth/account/delete", json={})
    assert missing.status == 400

    # ---- delete: every device is logged out at once
    deleted = await tablet.call("POST", "/api/auth/account/delete", json={"code": code})
    assert deleted.status == 200 and deleted.body == {"status": "deleted", "user_id": user_id}, deleted
    for device in (phone, tablet):
        for method, path in [("GET", "/api/auth/account"), ("GET", "/api/files"), ("GET", "/api/trash"),
                             ("GET", "/api/billing/account"), ("PUT", "/api/files/FAVOURITES/late.gpx")]:
            assert (await device.call(method, path)).status == 401, (method, path)
    again = await phone.call("POST", "/api/auth/account/delete", json={"code": code})
    assert again.status == 401

    # ---- every service's database and the bucket: nothing of the user (id nor e-mail)
    async def leftovers():
        left = await documents_mentioning(stack, mongo, user_id)
        left.update(await documents_mentioning(stack, mongo, email))
        return {"documents": left, "blobs": blobs_mentioning(stack, user_id)} if left or blobs_mentioning(
            stack, user_id) else None

    async def erased():
        return await leftovers() is None
    try:
        await eventually(erased, timeout=30, what="every service erasing the account")
    except AssertionError:
        raise AssertionError(f"left of the deleted account: {await leftovers()}") from None

    # ---- Bob is untouched
    assert as_data(await documents_mentioning(stack, mongo, bob_session["user_id"])) == bob_before
    assert blobs_mentioning(stack, bob_session["user_id"]) == bob_blobs
    assert [f["name"] for f in (await bob.call("GET", "/api/files")).body["files"]] == ["bob.gpx"]
    assert (await bob.call("GET", "/api/trash")).body["total_items"] == 1

    # ---- account-deleted applied again (the same event, and a copy with a new id) changes nothing
    event = await deletion_event(stack, user_id)
    copy = {**event, "id": uuid.uuid4().hex}
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    await producer.start()
    try:
        for e in (event, copy):
            await producer.send_and_wait(f"{stack.topic_prefix}auth", json.dumps(e).encode(), key=user_id.encode())
    finally:
        await producer.stop()

    async def copy_applied_everywhere():
        dbs = [mongo[f"{stack.db_prefix}{s}"] for s in SERVICES]
        return all([await db["processed_events"].find_one({"_id": copy["id"]}) for db in dbs])
    await eventually(copy_applied_everywhere, what="every service applying the repeated account-deleted")
    assert await leftovers() is None
    assert as_data(await documents_mentioning(stack, mongo, bob_session["user_id"])) == bob_before
    assert blobs_mentioning(stack, bob_session["user_id"]) == bob_blobs

    # ---- the e-mail can sign up again: a new, empty account
    await advance_clock(stack, RESEND_SECONDS + 1)
    fresh, fresh_session = await login(gateway, stack.smtp_sink_url, email=email)
    assert fresh_session["new_account"] is True and fresh_session["user_id"] != user_id
    assert (await fresh.call("GET", "/api/files")).body["files"] == []
    assert (await fresh.call("GET", "/api/billing/account")).body["plan"] is None
    assert await count_mails(gateway.session, stack.smtp_sink_url, email) == 5
