"""Devices of one account: listed with their description and "this device"; logging one out
(or this one) ends its access on the very next request on every route, and says so with
`device-logged-out`. And one user's token never reaches another user's data."""



from osmcloud_localstack.client import eventually, login
from osmcloud_localstack.testing import advance_clock, events_of

RESEND_SECONDS = 30
PHONE = {"name": "Ann's phone", "brand": "Acme", "model": "A1", "platform": "android"}
TABLET = {"name": "Ann's tablet", "brand": "Fruit", "model": "Pad 7", "platform": "ios"}
WEB = {"name": "Firefox", "brand": "", "model": "", "platform": "web"}

EVERY_ROUTE = [("GET", "/api/auth/account"), ("GET", "/api/auth/devices"), ("POST", "/api/auth/logout"),
               ("POST", "/api/auth/account/deletion-codes"), ("GET", "/api/files"), ("GET", "/api/files/usage"),
               ("PUT", "/api/files/FAVOURITES/x.gpx"), ("GET", "/api/trash"), ("GET", "/api/billing/account"),
               ("POST", "/api/billing/start")]


async def login_devices(stack, gateway, email, *devices):
    """Logs several devices into one account (past the resend cooldown between codes)."""
    clients = []
    for n, device in enumerate(devices):
        if n:
            await advance_clock(stack, RESEND_SECONDS + 1)
        clients.append(await login(gateway, stack.smtp_sink_url, email=email, device=device))
    return clients


async def test_devices_are_listed_and_logged_out_one_by_one(stack, gateway, unique_email):
    (phone, s1), (tablet, s2), (web, s3) = await login_devices(stack, gateway, unique_email, PHONE, TABLET, WEB)
    assert s1["user_id"] == s2["user_id"] == s3["user_id"]
    assert (s1["new_account"], s2["new_account"], s3["new_account"]) == (True, False, False)

    listed = await phone.call("GET", "/api/auth/devices")
    assert listed.status == 200
    devices = listed.body["devices"]
    assert [d["id"] for d in devices] == [s1["device_id"], s2["device_id"], s3["device_id"]]  # oldest first
    assert {k: devices[1][k] for k in ("name", "brand", "model", "platform")} == TABLET
    assert [d["this_device"] for d in devices] == [True, False, False]
    assert all(d["created_at"] and d["last_seen_at"] for d in devices)
    assert devices[0]["created_at"] < devices[1]["created_at"] < devices[2]["created_at"]
    account = (await tablet.call("GET", "/api/auth/account")).body
    assert account["email"] == unique_email and account["created_at"]
    assert [d["this_device"] for d in account["devices"]] == [False, True, False]

    # the phone logs the web browser out: its token fails on the very next request, everywhere
    out = await phone.call("DELETE", f"/api/auth/devices/{s3['device_id']}")
    assert out.status == 200 and out.body == {"status": "logged_out", "device_id": s3["device_id"],
                                              "this_device": False}
    for method, path in EVERY_ROUTE:
        reply = await web.call(method, path)
        assert reply.status == 401, (method, path, reply)

    # the tablet logs itself out
    out = await tablet.call("POST", "/api/auth/logout")
    assert out.status == 200 and out.body["this_device"] is True
    for method, path in EVERY_ROUTE:
        assert (await tablet.call(method, path)).status == 401, (method, path)

    # the phone goes on, alone
    remaining = (await phone.call("GET", "/api/auth/devices")).body["devices"]
    assert [d["id"] for d in remaining] == [s1["device_id"]]
    again = await phone.call("DELETE", f"/api/auth/devices/{s2['device_id']}")
    assert again.status == 404 and again.error_code() == "device_not_found"
    assert (await phone.call("DELETE", "/api/auth/devices/no-such-device")).status == 404

    logged_out = await events_of(stack, "auth", s1["user_id"], types={"device-logged-out"},
                                 until=lambda es: len(es) >= 2)
    assert sorted(e["data"]["device_id"] for e in logged_out) == sorted([s2["device_id"], s3["device_id"]])
    assert {e["producer"] for e in logged_out} == {"auth"}


async def test_last_seen_moves_when_a_device_is_used(stack, gateway, unique_email):
    me, _ = await login(gateway, stack.smtp_sink_url, email=unique_email, device=PHONE)
    before = (await me.call("GET", "/api/auth/devices")).body["devices"][0]["last_seen_at"]
    await advance_clock(stack, 120)
    assert (await me.call("GET", "/api/files")).status == 200
    after = (await me.call("GET", "/api/auth/devices")).body["devices"][0]["last_seen_at"]
    assert after > before


async def test_a_token_of_one_user_never_reaches_another_users_data(stack, gateway):
    ann, ann_session = await login(gateway, stack.smtp_sink_url, device=PHONE)
    bob, bob_session = await login(gateway, stack.smtp_sink_url, device=TABLET)
    for who in (ann, bob):
        assert (await who.call("POST", "/api/billing/start")).status == 201

    async def quota_known():
        return (await ann.call("GET", "/api/files/usage")).body["quota_bytes"] > 0
    await eventually(quota_known, what="files learning Ann's quota")
    up = await ann.call("PUT", "/api/files/FAVOURITES/home.gpx", data=b"<gpx>Ann's home</gpx>")
    assert up.status == 201, up
    trashed = await ann.call("PUT", "/api/files/OSM_NOTES/n.osn", data=b"note")
    assert trashed.status == 201
    assert (await ann.call("DELETE", "/api/files/OSM_NOTES/n.osn")).status == 200

    async def in_trash():
        return (await ann.call("GET", "/api/trash")).body["total_items"] == 1
    await eventually(in_trash, what="Ann's trash item")

    # Bob, even naming Ann in forged identity headers, sees only his own (empty) account
    forged = {"X-User-Id": ann_session["user_id"], "X-Device-Id": ann_session["device_id"]}
    for headers in ({}, forged):
        assert (await bob.call("GET", "/api/files", headers=headers)).body["files"] == []
        assert (await bob.call("GET", "/api/files/usage", headers=headers)).body["used_bytes"] == 0
        assert (await bob.call("GET", "/api/trash", headers=headers)).body["total_items"] == 0
        account = (await bob.call("GET", "/api/auth/account", headers=headers)).body
        assert account["user_id"] == bob_session["user_id"] and account["email"] == bob_session["email"]
        assert [d["id"] for d in account["devices"]] == [bob_session["device_id"]]
        for method, path in [("GET", "/api/files/FAVOURITES/home.gpx"),
                             ("GET", "/api/files/history/FAVOURITES/home.gpx"),
                             ("DELETE", "/api/files/FAVOURITES/home.gpx")]:
            reply = await bob.call(method, path, headers=headers)
            assert reply.status == 404, (method, path, reply)
        reply = await bob.call("DELETE", f"/api/auth/devices/{ann_session['device_id']}", headers=headers)
        assert reply.status == 404, reply
        reply = await bob.call("GET", f"/api/files/FAVOURITES/home.gpx?version={up.body['version_id']}",
                               headers=headers)
        assert reply.status == 404, reply

    # Ann's data and device are as they were
    assert (await ann.call("GET", "/api/files/FAVOURITES/home.gpx")).body == b"<gpx>Ann's home</gpx>"
    assert [d["id"] for d in (await ann.call("GET", "/api/auth/devices")).body["devices"]] == [ann_session["device_id"]]
    assert (await ann.call("GET", "/api/trash")).body["total_items"] == 1
