"""OsmAnd's empty-trash and orderid, written from the protocol (../shared/OSMAND-PROTOCOL.md) and
the app's own requests (EmptyTrashCommand: `POST /userdata/empty-trash?deviceid&accessToken`,
a JSON array of at most 50 {name, type, updatetime}; RegisterUserCommand / RegisterDeviceCommand
/ user-update-orderid: FORM posts carrying `orderid`), raw HTTP through the gateway.

Deleted files are made through the native API (the /userdata/ upload belongs to files' part of
the protocol); a trash entry's updatetime is its delete marker's server time, read from the
native trash page (`tombstone_update_ms`) and cross-checked against files' own history."""

import re
import uuid
from datetime import timedelta

from pymongo import AsyncMongoClient

from osmcloud_localstack.client import GatewayClient, Reply, count_mails, eventually, login, read_code
from osmcloud_localstack.testing import events_of, service_now

PRO_PRODUCT = "osmcloud.pro.annual"


# ---------------------------------------------------------------------------------------------
# helpers (test modules are imported in importlib mode: no sharing with sibling test files)
# ---------------------------------------------------------------------------------------------

def osmand_error(reply: Reply) -> int | None:
    if reply.status != 400 or not isinstance(reply.body, dict):
        return None
    return reply.body.get("error", {}).get("errorCode")


class App:
    """What OsmAnd's app sends, parameter for parameter."""

    def __init__(self, gateway: GatewayClient) -> None:
        self.gw, self.phone_id = gateway.with_token(None), str(uuid.uuid4())
        self.device: dict | None = None

    def creds(self) -> dict[str, str]:
        return {"deviceid": self.device["id"], "accessToken": self.device["accesstoken"]}

    async def user_register(self, email: str, orderid: str | None = None) -> Reply:
        data = {"email": email, "login": "false", "lang": "en", "deviceid": self.phone_id}
        return await self.gw.call("POST", "/userdata/user-register",
                                  data={**data, "orderid": orderid} if orderid is not None else data)

    async def device_register(self, email: str, token: str, orderid: str | None = None) -> Reply:
        data = {"email": email, "token": token, "deviceid": self.phone_id, "brand": "Google", "model": "Pixel 8",
                "lang": "en"}
        reply = await self.gw.call("POST", "/userdata/device-register",
                                   data={**data, "orderid": orderid} if orderid is not None else data)
        if reply.status == 200:
            self.device = reply.body
        return reply

    async def update_orderid(self, email: str, orderid: str) -> Reply:
        return await self.gw.call("POST", "/userdata/user-update-orderid",
                                  data={"email": email, "orderid": orderid, "deviceid": self.phone_id})

    async def validate_sub(self) -> Reply:
        return await self.gw.call("GET", "/userdata/user-validate-sub", params=self.creds())

    async def sign_in(self, sink_url: str, email: str, orderid: str | None = None) -> dict:
        before = await count_mails(self.gw.session, sink_url, email)
        reply = await self.user_register(email, orderid)
        assert reply.status == 200 and reply.body == {"status": "ok"}, reply
        code = await read_code(self.gw.session, sink_url, email, after=before)
        assert re.fullmatch(r"\d{12}", code), code
        reply = await self.device_register(email, code, orderid)
        assert reply.status == 200, reply
        return reply.body


async def osmand_user(stack, gateway: GatewayClient, email: str) -> tuple[App, GatewayClient, str]:
    """An account signed up through /userdata/ (so billing gives it Start), its app device, and a
    native client of the same account: the device's accessToken is a device token like any
    other, so it also works as the native API's bearer token."""
    app = App(gateway)
    await app.sign_in(stack.smtp_sink_url, email)
    me = gateway.with_token(app.device["accesstoken"])
    session = (await me.call("GET", "/api/auth/account")).body

    async def quota_known():
        return (await me.call("GET", "/api/files/usage")).body["quota_bytes"] > 0
    await eventually(quota_known, what="files learning the Start quota of an OsmAnd sign-up")
    return app, me, session["user_id"]


async def empty_trash(app: App, body) -> object:
    """As EmptyTrashCommand sends it: credentials in the query, the entries as a JSON body."""
    data = body if isinstance(body, (bytes, str)) else None
    return await app.gw.call("POST", "/userdata/empty-trash", params=app.creds(),
                             json=None if data is not None else body, data=data,
                             headers={"Content-Type": "application/json"})


async def trash_page(me: GatewayClient) -> dict[str, dict]:
    body = (await me.call("GET", "/api/trash")).body
    return {i["name"]: i for month in body["months"] for i in month["items"]}


async def trashed(me: GatewayClient, names: set[str], timeout: float = 60) -> dict[str, dict]:
    async def arrived():
        items = await trash_page(me)
        return items if names <= set(items) else None
    return await eventually(arrived, timeout=timeout, what=f"{len(names)} items in the trash")


async def make_deleted(me: GatewayClient, names: list[str], file_type: str = "FAVOURITES") -> dict[str, dict]:
    for name in names:
        reply = await me.call("PUT", f"/api/files/{file_type}/{name}", data=f"<gpx>{name}</gpx>".encode(),
                              params={"overwrite": "true"})
        assert reply.status == 201, reply
    for name in names:
        reply = await me.call("DELETE", f"/api/files/{file_type}/{name}")
        assert reply.status == 200, reply
    return await trashed(me, set(names))


def entry(item: dict) -> dict:
    return {"name": item["name"], "type": item["type"], "updatetime": item["tombstone_update_ms"]}


# ---------------------------------------------------------------------------------------------
# empty-trash
# ---------------------------------------------------------------------------------------------

async def test_empty_trash_refuses_51_and_purges_50_like_delete_now(stack, gateway, unique_email, files_data):
    app, me, user_id = await osmand_user(stack, gateway, unique_email)
    names = [f"trash50/fav-{i:02d}.gpx" for i in range(50)]
    items = await make_deleted(me, names)
    # the trash item's updatetime is the delete marker's, exactly as files lists it
    history = (await me.call("GET", f"/api/files/history/FAVOURITES/{names[0]}")).body["versions"]
    assert history[0]["deleted"] and history[0]["updatetime"] == items[names[0]]["tombstone_update_ms"]
    entries = [entry(items[n]) for n in names]

    files = files_data
    blobs_before = await files.blob_keys(user_id)
    assert len(blobs_before) >= 50

    # 51 entries: the whole call is refused, nothing is deleted
    reply = await empty_trash(app, entries + [{"name": "x.gpx", "type": "FAVOURITES", "updatetime": 1}])
    assert osmand_error(reply) == 400 and "at most 50" in reply.body["error"]["message"], reply
    assert set(await trash_page(me)) == set(names)
    assert len(await files.versions(user_id, "FAVOURITES", names[0])) == 2

    # 50: every one deleted, answered in the request's order
    reply = await empty_trash(app, entries)
    assert reply.status == 200 and reply.body["status"] == "ok", reply
    assert [(r["name"], r["type"], r["updatetime"], r["status"]) for r in reply.body["results"]] == \
        [(e["name"], e["type"], e["updatetime"], "deleted") for e in entries]
    assert await trash_page(me) == {}  # the items go at once, as with delete-now

    # files applies the purge events: every version and blob of the 50 files goes
    async def all_gone():
        left = await files.db["versions"].count_documents({"user_id": user_id})
        return left == 0 and not (blobs_before & await files.blob_keys(user_id))
    await eventually(all_gone, timeout=240, what="50 files' versions and blobs removed by files")
    purged = await events_of(stack, "trash", user_id, timeout=60,
                             until=lambda es: len([e for e in es if e["type"] == "trash-item-purged"]) >= 50)
    assert {e["data"]["reason"] for e in purged if e["type"] == "trash-item-purged"} == {"deleted"}
    assert len({e["data"]["tombstone_version_id"] for e in purged if e["type"] == "trash-item-purged"}) == 50


async def test_empty_trash_answers_each_entry_on_its_own(stack, gateway, unique_email, files_data):
    app, me, user_id = await osmand_user(stack, gateway, unique_email)
    items = await make_deleted(me, ["mixed/gone.gpx", "mixed/kept.gpx"])
    live = await me.call("PUT", "/api/files/FAVOURITES/mixed/live.gpx", data=b"<gpx>live</gpx>")
    assert live.status == 201, live
    gone, kept = entry(items["mixed/gone.gpx"]), entry(items["mixed/kept.gpx"])

    reply = await empty_trash(app, [
        gone,                                                                    # a real trash entry
        {**kept, "updatetime": kept["updatetime"] - 1},                          # another updatetime
        {"name": "mixed/live.gpx", "type": "FAVOURITES", "updatetime": live.body["updatetime"]},  # not deleted
        {"name": "mixed/never.gpx", "type": "FAVOURITES", "updatetime": 123},   # no such file
        gone,                                                                    # the same entry again
    ])
    assert reply.status == 200 and reply.body["status"] == "ok", reply
    statuses = [r["status"] for r in reply.body["results"]]
    assert statuses == ["deleted", "skipped_not_trash", "skipped_not_trash", "already_missing", "already_missing"], \
        reply.body
    assert all(r.get("message") for r in reply.body["results"] if r["status"] == "skipped_not_trash")
    print(f"\n  empty-trash mixed → {reply.body['results']}")

    # the skipped ones are untouched; the deleted one, asked again later, is already missing
    assert set(await trash_page(me)) == {"mixed/kept.gpx"}
    assert (await me.call("GET", "/api/files/FAVOURITES/mixed/live.gpx")).status == 200
    again = await empty_trash(app, [gone])
    assert [r["status"] for r in again.body["results"]] == ["already_missing"], again

    files = files_data
    async def versions_gone():
        return not await files.versions(user_id, "FAVOURITES", "mixed/gone.gpx")
    await eventually(versions_gone, timeout=120, what="files removing the purged file's versions")
    again = await empty_trash(app, [gone])
    assert [r["status"] for r in again.body["results"]] == ["already_missing"], again

    # the kept one, under its own updatetime, goes too
    reply = await empty_trash(app, [kept])
    assert [r["status"] for r in reply.body["results"]] == ["deleted"] and await trash_page(me) == {}


async def test_empty_trash_bad_requests_are_protocol_errors_and_delete_nothing(stack, gateway, unique_email):
    app, me, _ = await osmand_user(stack, gateway, unique_email)
    items = await make_deleted(me, ["bad/a.gpx"])
    good = entry(items["bad/a.gpx"])
    for body in (b"not json", b"[{\"name\":", {"name": "a"}, [1], [{"name": "bad/a.gpx", "type": "FAVOURITES"}],
                 [{**good, "updatetime": str(good["updatetime"])}], [good, {**good, "updatetime": 1.5}],
                 b"[{\"name\":\"a\",\"type\":\"GPX\",\"updatetime\":NaN}]"):
        reply = await empty_trash(app, body)
        assert reply.status == 400 and osmand_error(reply) == 400, (body, reply)
    # credentials: missing or revoked → 105, as on every authenticated call
    reply = await app.gw.call("POST", "/userdata/empty-trash", json=[good])
    assert osmand_error(reply) == 105, reply
    reply = await app.gw.call("POST", "/userdata/empty-trash", json=[good],
                              params={"deviceid": app.device["id"], "accessToken": "wrong"})
    assert osmand_error(reply) == 105, reply
    assert set(await trash_page(me)) == {"bad/a.gpx"}
    # an empty list is a valid, empty call; the untouched entry still goes with a good one
    reply = await empty_trash(app, [])
    assert reply.status == 200 and reply.body == {"status": "ok", "results": []}
    reply = await empty_trash(app, [good])
    assert [r["status"] for r in reply.body["results"]] == ["deleted"] and await trash_page(me) == {}


# ---------------------------------------------------------------------------------------------
# orderid
# ---------------------------------------------------------------------------------------------

async def test_unknown_and_expired_orders_answer_102(stack, gateway, unique_email, receipts):
    app, me, _ = await osmand_user(stack, gateway, unique_email)
    now = await service_now(stack)
    expired = receipts.sign("GPA.expired-" + unique_email[5:17], now - timedelta(days=40), now - timedelta(days=10),
                            PRO_PRODUCT)
    for orderid in ("GPA.0000-0000-0000-00000", expired, "garbage.not-a-receipt"):
        reply = await app.update_orderid(unique_email, orderid)
        assert osmand_error(reply) == 102, (orderid, reply)
    assert (await app.validate_sub()).body["orderid"] is None
    # a sign-up with an unknown order is refused before any code is mailed
    newcomer = f"new-{unique_email}"
    reply = await App(gateway).user_register(newcomer, "GPA.0000-unknown")
    assert osmand_error(reply) == 102, reply
    assert await count_mails(gateway.session, stack.smtp_sink_url, newcomer) == 0


async def test_an_order_of_another_account_answers_109(stack, gateway, unique_email, receipts):
    now = await service_now(stack)
    order_id = "GPA.other-" + unique_email[5:17]
    token = receipts.sign(order_id, now, now + timedelta(days=30), PRO_PRODUCT)
    owner, _ = await login(gateway, stack.smtp_sink_url)
    bought = await owner.call("POST", "/api/billing/purchases", json={
        "platform": "sandbox", "product_id": PRO_PRODUCT, "order_id": order_id, "receipt": token})
    assert bought.status == 201, bought

    app, me, _ = await osmand_user(stack, gateway, unique_email)
    for orderid in (token, order_id):  # the order token, and the bare order id billing knows
        reply = await app.update_orderid(unique_email, orderid)
        assert osmand_error(reply) == 109, (orderid, reply)
    assert (await me.call("GET", "/api/billing/account")).body["plan"] == "start"
    # nor can a new account sign up with it
    reply = await App(gateway).user_register(f"new-{unique_email}", token)
    assert osmand_error(reply) == 109, reply


async def test_a_valid_order_links_and_brings_its_plan(stack, gateway, unique_email, receipts):
    app, me, user_id = await osmand_user(stack, gateway, unique_email)
    assert (await me.call("GET", "/api/billing/account")).body["plan"] == "start"
    now = await service_now(stack)
    order_id = "GPA.valid-" + unique_email[5:17]
    token = receipts.sign(order_id, now, now + timedelta(days=30), PRO_PRODUCT)

    reply = await app.update_orderid(unique_email, token)
    assert reply.status == 200 and reply.body == {"status": "ok"}, reply
    assert (await app.validate_sub()).body["orderid"] == token
    account = (await me.call("GET", "/api/billing/account")).body
    assert account["plan"] == "pro" and [o["order_id"] for o in account["orders"]] == [order_id]

    async def pro_in_files():
        return (await me.call("GET", "/api/files/usage")).body["plan"] == "pro"
    await eventually(pro_in_files, what="files applying the Pro entitlement of the linked order")
    events = await events_of(stack, "billing", user_id, timeout=60, until=lambda es: any(
        e["type"] == "subscription-activated" and e["data"]["entitlement"]["plan"] == "pro" for e in es))
    assert [e["data"]["entitlement"]["plan"] for e in events if e["type"] == "subscription-activated"] == \
        ["start", "pro"]

    # sending it again is fine (the same account's order), also as the bare order id
    for orderid in (token, order_id):
        reply = await app.update_orderid(unique_email, orderid)
        assert reply.status == 200, reply
    # an empty orderid carries no credential: it answers ok and changes nothing
    reply = await app.update_orderid(unique_email, "")
    assert reply.status == 200 and (await app.validate_sub()).body["orderid"] == order_id
    assert (await me.call("GET", "/api/billing/account")).body["plan"] == "pro"


async def test_sign_up_with_an_order_links_it_at_device_register(stack, gateway, unique_email, receipts):
    now = await service_now(stack)
    order_id = "GPA.signup-" + unique_email[5:17]
    token = receipts.sign(order_id, now, now + timedelta(days=30), PRO_PRODUCT)
    app = App(gateway)
    await app.sign_in(stack.smtp_sink_url, unique_email, orderid=token)
    assert (await app.validate_sub()).body["orderid"] == token
    me = gateway.with_token(app.device["accesstoken"])

    async def pro():
        return (await me.call("GET", "/api/billing/account")).body["plan"] == "pro"
    await eventually(pro, what="the order's Pro plan on the new account")
    # the Start activation that follows an OsmAnd sign-up does not take Pro away: first proven
    # to have run (billing lists the sign-up's account-registered among its processed events)
    mongo = AsyncMongoClient(stack.mongo_url)
    try:
        user = await mongo[f"{stack.db_prefix}auth"]["users"].find_one({"email": unique_email})
        registered = await events_of(stack, "auth", user["_id"], types={"account-registered"})
        processed = mongo[f"{stack.db_prefix}billing"]["processed_events"]

        async def handled():
            return await processed.find_one({"_id": registered[0]["id"]})
        await eventually(handled, what="billing handling the sign-up")
    finally:
        await mongo.close()
    assert (await me.call("GET", "/api/billing/account")).body["plan"] == "pro"
