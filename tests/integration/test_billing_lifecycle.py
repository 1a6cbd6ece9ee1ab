"""The Pro lifecycle end to end through the gateway, on the shared clock: purchase, expiry,
a year of grace on Start rules, the end of grace sending Pro-only files to the trash, renewal,
and the trash purge 30 days later."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from minio import Minio
from pymongo import AsyncMongoClient

from osmcloud_billing.receipts import sign_sandbox_receipt
from osmcloud_common.clock import freeze_shared_clock, set_shared_offset, shared_offset
from osmcloud_localstack.client import GatewayClient, eventually, login
from osmcloud_localstack.testing import clock_confirmer

MONTH = timedelta(days=30)
YEAR = timedelta(days=365)
TRACK = b"<gpx><trk><name>ride</name></trk></gpx>"
FAVS = b"<gpx><wpt lat='1' lon='2'/></gpx>"


@pytest.fixture
async def clock(stack):
    mongo = AsyncMongoClient(stack.mongo_url)

    base = await shared_offset(mongo)  # earlier tests may have moved the clock already
    start = (datetime.now(UTC) + base).replace(microsecond=0)

    confirm = clock_confirmer(stack)

    async def applied(set_at: float) -> None:  # every service reports the setting it applied
        await (confirm(set_at) if confirm else asyncio.sleep(0.5))

    async def move(offset: timedelta) -> datetime:
        """Freezes every service's clock at start + offset, exactly."""
        await applied(await freeze_shared_clock(mongo, start + offset))
        return start + offset
    move.start = start
    await move(timedelta(0))
    yield move
    await applied(await set_shared_offset(mongo, base))
    await mongo.close()


async def buy_pro(me: GatewayClient, receipts, purchased_at: datetime, expires_at: datetime) -> dict:
    order_id = f"GPA.{uuid.uuid4().hex[:10]}"
    reply = await me.call("POST", "/api/billing/purchases", json={
        "platform": "sandbox", "product_id": "osmcloud.pro.monthly", "order_id": order_id,
        "receipt": receipts.sign(order_id, purchased_at, expires_at)})
    assert reply.status == 201, reply
    assert reply.body["plan"] == "pro" and reply.body["status"] == "active"
    return reply.body


async def wait_status(me: GatewayClient, status: str) -> dict:
    async def probe():
        account = (await me.call("GET", "/api/billing/account")).body
        return account if account["status"] == status else None
    return await eventually(probe, what=f"billing status {status}")


async def wait_quota(me: GatewayClient, plan: str) -> None:
    async def probe():
        return (await me.call("GET", "/api/files/usage")).body["plan"] == plan
    await eventually(probe, what=f"files applying the {plan} entitlement")


async def trash_names(me: GatewayClient) -> set[str]:
    trash = (await me.call("GET", "/api/trash")).body
    return {item["name"] for month in trash["months"] for item in month["items"]}


async def pro_user_with_files(gateway, stack, receipts, t0: datetime, term: timedelta = MONTH
                              ) -> tuple[GatewayClient, str]:
    me, session = await login(gateway, stack.smtp_sink_url)
    await buy_pro(me, receipts, t0, t0 + term)
    await wait_quota(me, "pro")
    assert (await me.call("PUT", "/api/files/GPX/tracks/ride.gpx", data=TRACK)).status == 201
    assert (await me.call("PUT", "/api/files/FAVOURITES/favourites.gpx", data=FAVS)).status == 201
    return me, session["user_id"]


async def test_expiry_grace_end_renewal_and_purge(stack, gateway, clock, receipts):
    t0 = clock.start
    renewer, _ = await pro_user_with_files(gateway, stack, receipts, t0)
    lapsed, lapsed_id = await pro_user_with_files(gateway, stack, receipts, t0)
    # its grace ends a day earlier: proof that the deadline job ran before "nothing happened yet"
    earlier, _ = await pro_user_with_files(gateway, stack, receipts, t0, MONTH - timedelta(days=1))

    await clock(MONTH + timedelta(seconds=1))
    for me in (renewer, lapsed):
        await wait_status(me, "in_grace")
        await wait_quota(me, "start")
        refused = await me.call("PUT", "/api/files/GPX/tracks/ride.gpx", data=TRACK, params={"overwrite": "true"})
        assert refused.status == 403 and refused.error_code() == "grace_period", refused
        assert "grace period" in refused.body["error"]["message"]
        download = await me.call("GET", "/api/files/GPX/tracks/ride.gpx")
        assert download.status == 200 and download.body == TRACK
        assert (await me.call("GET", "/api/files")).status == 200

    await clock(MONTH + YEAR - timedelta(seconds=1))
    await wait_status(earlier, "expired")  # a deadline scan has run at this moment
    for me in (renewer, lapsed):
        assert (await me.call("GET", "/api/billing/account")).body["status"] == "in_grace"
        refused = await me.call("PUT", "/api/files/GPX/tracks/new.gpx", data=TRACK)
        assert refused.status == 403 and refused.error_code() == "grace_period"
        assert await trash_names(me) == set()

    await clock(MONTH + YEAR + timedelta(seconds=2))
    for me in (renewer, lapsed):
        await wait_status(me, "expired")

        async def tracks_trashed(me: GatewayClient = me) -> bool:  # this iteration's account
            return await trash_names(me) == {"tracks/ride.gpx"}
        await eventually(tracks_trashed, timeout=90, what="Pro-only files reaching the trash at the end of grace")
        live = (await me.call("GET", "/api/files")).body["files"]
        assert [(f["type"], f["name"]) for f in live] == [("FAVOURITES", "favourites.gpx")]

    # buying Pro again restores uploads (and the trashed tracks stay restorable)
    now = t0 + MONTH + YEAR + timedelta(seconds=2)
    await buy_pro(renewer, receipts, now, now + MONTH)
    await wait_quota(renewer, "pro")
    assert (await renewer.call("PUT", "/api/files/GPX/tracks/again.gpx", data=TRACK)).status == 201

    # the account that did not renew loses its tracks 30 days after the end of grace, blobs included
    await clock(MONTH + YEAR + MONTH + timedelta(seconds=3))

    async def purged():
        return await trash_names(lapsed) == set()
    # the clock jump expires every trash item of earlier tests too: allow for purging them all
    await eventually(purged, timeout=180, what="the trash purging the lapsed account's tracks")
    mongo = AsyncMongoClient(stack.mongo_url)
    try:
        async def versions_gone():
            left = await mongo[f"{stack.db_prefix}files"]["versions"].find(
                {"user_id": lapsed_id, "type": "GPX"}).to_list(None)
            return left == []
        await eventually(versions_gone, what="the lapsed account's track versions being removed")
        fav_versions = await mongo[f"{stack.db_prefix}files"]["versions"].find(
            {"user_id": lapsed_id, "type": "FAVOURITES"}).to_list(None)
        assert len(fav_versions) == 1
    finally:
        await mongo.close()
    s3 = Minio(stack.s3_endpoint, access_key=stack.s3_access_key, secret_key=stack.s3_secret_key, secure=False)
    blobs = [o.object_name for o in s3.list_objects(stack.s3_bucket, prefix=f"users/{lapsed_id}/", recursive=True)]
    assert blobs == [f"users/{lapsed_id}/{fav_versions[0]['_id']}"]


async def test_renewal_mid_grace_trashes_nothing(stack, gateway, clock, receipts):
    t0 = clock.start
    me, _ = await pro_user_with_files(gateway, stack, receipts, t0)
    control, _ = await pro_user_with_files(gateway, stack, receipts, t0)  # same dates, never renewed
    await clock(MONTH + timedelta(days=100))
    await wait_status(me, "in_grace")
    await wait_quota(me, "start")  # files has applied the expiry before the renewal arrives
    now = t0 + MONTH + timedelta(days=100)
    renewed = await buy_pro(me, receipts, now, now + YEAR + MONTH)
    assert renewed["grace_until"] is None
    await wait_quota(me, "pro")
    assert (await me.call("PUT", "/api/files/GPX/tracks/more.gpx", data=TRACK)).status == 201
    await clock(MONTH + YEAR + timedelta(days=1))
    # the deadline job and files' grace-end reaction have run past this moment: the control
    # account's grace ended and its track went to the trash; only then is "nothing" a result
    await wait_status(control, "expired")

    async def control_trashed():
        return "tracks/ride.gpx" in await trash_names(control)
    await eventually(control_trashed, what="the control account's track in the trash")
    assert (await me.call("GET", "/api/billing/account")).body["status"] == "active"
    assert await trash_names(me) == set()
    names = {f["name"] for f in (await me.call("GET", "/api/files")).body["files"]}
    assert names == {"tracks/ride.gpx", "tracks/more.gpx", "favourites.gpx"}


async def test_bad_purchases_change_nothing(stack, gateway, receipts):
    me, _ = await login(gateway, stack.smtp_sink_url)
    other, _ = await login(gateway, stack.smtp_sink_url)
    t0 = datetime.now(UTC)
    order_id = f"GPA.{uuid.uuid4().hex[:10]}"
    good = receipts.sign(order_id, t0, t0 + MONTH)
    body = {"platform": "sandbox", "product_id": "osmcloud.pro.monthly", "order_id": order_id}
    forged = sign_sandbox_receipt("wrong-key", platform="sandbox", order_id=order_id,
                                  product_id="osmcloud.pro.monthly", purchased_at=t0, expires_at=t0 + MONTH)
    cases = [
        ({**body, "receipt": forged}, 400, "receipt_invalid"),
        ({**body, "receipt": "not-a-receipt"}, 400, "receipt_invalid"),
        ({**body, "product_id": "osmcloud.gold", "receipt": good}, 400, "unknown_product"),
        ({**body, "order_id": "GPA.other", "receipt": good}, 400, "receipt_mismatch"),
        ({"platform": "sandbox"}, 400, "bad_request"),
    ]
    for request, status, code in cases:
        reply = await me.call("POST", "/api/billing/purchases", json=request)
        assert (reply.status, reply.error_code()) == (status, code), (request, reply)
        assert reply.body["error"]["message"]
    assert (await me.call("GET", "/api/billing/account")).body["plan"] is None

    assert (await me.call("POST", "/api/billing/purchases", json={**body, "receipt": good})).status == 201
    stolen = await other.call("POST", "/api/billing/purchases", json={**body, "receipt": good})
    assert stolen.status == 409 and stolen.error_code() == "order_linked_elsewhere"
    assert (await other.call("GET", "/api/billing/account")).body["plan"] is None

    before = (await me.call("GET", "/api/billing/account")).body
    unknown = f"GPA.{uuid.uuid4().hex[:10]}"
    anonymous = gateway.with_token(None)
    reply = await anonymous.call("POST", "/api/billing/notifications/sandbox",
                                 json={"receipt": receipts.sign(unknown, t0, t0 + MONTH)})
    assert reply.status == 404 and reply.error_code() == "unknown_order"
    forged_renewal = await anonymous.call("POST", "/api/billing/notifications/sandbox", json={
        "receipt": sign_sandbox_receipt("wrong-key", platform="sandbox", order_id=order_id,
                                        product_id="osmcloud.pro.monthly", purchased_at=t0, expires_at=t0 + YEAR)})
    assert forged_renewal.status == 400
    assert (await me.call("GET", "/api/billing/account")).body == before  # nothing changed

    # a real renewal notification extends the subscription, idempotently
    renewal = {"receipt": receipts.sign(order_id, t0, t0 + 2 * MONTH)}
    first = await anonymous.call("POST", "/api/billing/notifications/sandbox", json=renewal)
    assert first.status == 200 and first.body == {"status": "applied", "event": "subscription-renewed"}
    again = await anonymous.call("POST", "/api/billing/notifications/sandbox", json=renewal)
    assert again.status == 200 and again.body["status"] == "unchanged"


MIB = 1024 * 1024


async def test_grace_year_keeps_reads_and_restores_then_grace_end_trashes_beyond_start(stack, gateway, clock, receipts):
    """PRODUCT.md §2 on the shared clock: during grace every stored type can be listed,
    downloaded, restored and deleted while uploads follow Start; at grace end the rule of
    docs/adr/0006-grace-end-rule.md trashes what lies beyond Start (types Start lacks, files
    over 2 MB, then everything after the newest files that fit 5 MB) and the account works on
    Start; buying Pro again lets the user restore from the trash."""
    t0 = clock.start
    me, session = await login(gateway, stack.smtp_sink_url)
    await buy_pro(me, receipts, t0, t0 + MONTH)
    await wait_quota(me, "pro")
    # one upload per second of the shared clock: each file's change time is distinct
    uploads = [("GPX", "tracks/ride.gpx", TRACK), ("GPX", "tracks/old.gpx", TRACK),
               ("FAVOURITES", "gone.gpx", FAVS), ("FAVOURITES", "old.gpx", b"o" * MIB),
               ("FAVOURITES", "big.gpx", b"b" * (2 * MIB + 1)), ("GLOBAL", "settings.json", b"s" * (2 * MIB)),
               ("PROFILE", "car.json", b"c" * (2 * MIB)), ("OSM_NOTES", "notes.osn", b"n" * (MIB - 1000))]
    for second, (file_type, name, body) in enumerate(uploads, start=1):
        await clock(timedelta(seconds=second))
        assert (await me.call("PUT", f"/api/files/{file_type}/{name}", data=body)).status == 201
    await clock(MONTH - timedelta(days=1))  # deleted a day before Pro expires: still in the trash in grace
    assert (await me.call("DELETE", "/api/files/GPX/tracks/old.gpx")).status == 200
    await eventually(lambda: _has_trash(me, "tracks/old.gpx"), what="the deleted track in the trash")

    # grace: reading, restoring any type and deleting work; uploads follow Start
    await clock(MONTH + timedelta(seconds=30))
    await wait_status(me, "in_grace")
    await wait_quota(me, "start")
    assert {f["name"] for f in (await me.call("GET", "/api/files")).body["files"]} >= {"tracks/ride.gpx", "big.gpx"}
    assert (await me.call("GET", "/api/files/FAVOURITES/big.gpx")).body == b"b" * (2 * MIB + 1)
    item = await _trash_item(me, "tracks/old.gpx")
    restored = await me.call("POST", f"/api/trash/items/{item['id']}/restore")
    assert restored.status == 200, restored  # a type Start lacks, 12 MB stored against Start's 5
    assert (await me.call("GET", "/api/files/GPX/tracks/old.gpx")).body == TRACK
    assert (await me.call("DELETE", "/api/files/FAVOURITES/gone.gpx")).status == 200
    refused = await me.call("PUT", "/api/files/GPX/tracks/new.gpx", data=TRACK)
    assert refused.status == 403 and refused.error_code() == "grace_period"
    over = await me.call("PUT", "/api/files/FAVOURITES/new.gpx", data=FAVS)
    assert over.status == 413 and over.error_code() == "quota_exceeded"  # Start's 5 MB, far passed

    # grace end without renewal: the rule decides, and usage ends within Start
    await clock(MONTH + YEAR + timedelta(seconds=40))
    await wait_status(me, "expired")
    # gone.gpx, deleted in grace, was purged 30 days later; the rule's files are in the trash
    expected_trash = {"tracks/ride.gpx", "tracks/old.gpx", "big.gpx", "old.gpx"}

    async def rule_applied():
        return await trash_names(me) == expected_trash
    await eventually(rule_applied, timeout=90, what="the grace-end rule's files in the trash")
    live = {(f["type"], f["name"]) for f in (await me.call("GET", "/api/files")).body["files"]}
    assert live == {("GLOBAL", "settings.json"), ("PROFILE", "car.json"), ("OSM_NOTES", "notes.osn")}
    usage = (await me.call("GET", "/api/files/usage")).body
    assert usage["used_bytes"] == 5 * MIB - 1000 <= usage["quota_bytes"] == 5 * MIB and usage["plan"] == "start"
    assert (await me.call("PUT", "/api/files/FAVOURITES/fresh.gpx", data=FAVS)).status == 201  # works on Start
    refused = await me.call("PUT", "/api/files/GPX/tracks/new.gpx", data=TRACK)
    assert refused.status == 403 and refused.error_code() == "type_not_in_plan"

    # Pro bought after grace end: what the rule trashed comes back from the trash
    now = t0 + MONTH + YEAR + timedelta(seconds=40)
    await buy_pro(me, receipts, now, now + MONTH)
    await wait_quota(me, "pro")
    for name in ("tracks/ride.gpx", "big.gpx"):
        item = await _trash_item(me, name)
        assert (await me.call("POST", f"/api/trash/items/{item['id']}/restore")).status == 200
    assert (await me.call("GET", "/api/files/FAVOURITES/big.gpx")).body == b"b" * (2 * MIB + 1)


async def _trash_item(me: GatewayClient, name: str) -> dict:
    trash = (await me.call("GET", "/api/trash")).body
    return next(item for month in trash["months"] for item in month["items"] if item["name"] == name)


async def _has_trash(me: GatewayClient, name: str) -> bool:
    return name in await trash_names(me)
