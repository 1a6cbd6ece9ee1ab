"""The attacks of issue 16, each through the gateway as an attacker would try it, each refused
(every test here failed on the code before the fix): forged Pro, a 4-digit OsmAnd code turned
into a native session, strangers locking the owner out, unauthenticated account changes and
e-mail probes. Other client addresses are loopback addresses of their own (127.x.y.z)."""

import asyncio
import contextlib
import ipaddress
import uuid
from collections import Counter
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp
import pytest

from osmcloud_billing.receipts import sign_sandbox_receipt
from osmcloud_localstack.client import GatewayClient, count_mails, login, read_code
from osmcloud_localstack.testing import advance_clock

PUBLISHED_SANDBOX_KEY = "osmcloud-sandbox-key"  # the default billing shipped with
RESEND_SECONDS = 30


def new_address() -> str:
    n = uuid.uuid4().int
    return f"127.{n % 250 + 2}.{(n >> 8) % 250 + 2}.{(n >> 16) % 250 + 2}"


@contextlib.asynccontextmanager
async def client_at(stack, address: str):
    """A client whose connections come from `address` (the gateway sees it as the client)."""
    host = urlsplit(stack.gateway_url).hostname or ""
    assert ipaddress.ip_address(host).is_loopback, "other client addresses are loopback addresses of this machine"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0))) as session:
        yield GatewayClient(session, stack.gateway_url)


def forged_receipt(order_id: str) -> str:
    now = datetime.now(UTC)
    return sign_sandbox_receipt(PUBLISHED_SANDBOX_KEY, platform="sandbox", order_id=order_id,
                                product_id="osmcloud.pro.annual", purchased_at=now,
                                expires_at=datetime(2999, 1, 1, tzinfo=UTC))


def osmand_error(reply) -> int | None:
    if reply.status == 400 and isinstance(reply.body, dict):
        return reply.body.get("error", {}).get("errorCode")
    return None


async def osmand_sign_in(gateway: GatewayClient, sink_url: str, email: str) -> dict:
    before = await count_mails(gateway.session, sink_url, email)
    phone = str(uuid.uuid4())
    reply = await gateway.call("POST", "/userdata/user-register",
                               data={"email": email, "login": "false", "lang": "en", "deviceid": phone})
    assert reply.status == 200, reply
    code = await read_code(gateway.session, sink_url, email, after=before)
    reply = await gateway.call("POST", "/userdata/device-register", data={
        "email": email, "token": code, "deviceid": phone, "brand": "Google", "model": "Pixel", "lang": "en"})
    assert reply.status == 200, reply
    return reply.body


# ---------------------------------------------------------------- forged Pro
async def test_a_receipt_signed_with_the_published_sandbox_key_gives_no_pro(stack, gateway):
    me, session = await login(gateway, stack.smtp_sink_url)
    order_id = f"GPA.forged-{uuid.uuid4().hex[:8]}"
    reply = await me.call("POST", "/api/billing/purchases", json={
        "platform": "sandbox", "product_id": "osmcloud.pro.annual", "order_id": order_id,
        "receipt": forged_receipt(order_id)})
    assert reply.status == 400 and reply.error_code() == "receipt_invalid", reply
    # the same receipt through OsmAnd's unauthenticated call, for the victim's e-mail
    reply = await gateway.with_token(None).call("POST", "/userdata/user-update-orderid", data={
        "email": session["email"], "orderid": forged_receipt(order_id), "deviceid": str(uuid.uuid4())})
    assert osmand_error(reply) == 102, reply
    assert (await me.call("GET", "/api/billing/account")).body["plan"] is None


# ---------------------------------------------------------------- codes unlock what they were mailed for
async def test_an_osmand_login_code_never_yields_a_native_session(stack, gateway):
    victim, session = await login(gateway, stack.smtp_sink_url)  # a native account
    email = session["email"]
    before = await count_mails(gateway.session, stack.smtp_sink_url, email)
    reply = await gateway.with_token(None).call("POST", "/userdata/user-register", data={
        "email": email, "login": "true", "lang": "en", "deviceid": str(uuid.uuid4())})
    assert reply.status == 200, reply
    osmand_code = await read_code(gateway.session, stack.smtp_sink_url, email, after=before)
    reply = await gateway.with_token(None).call("POST", "/api/auth/sessions",
                                                json={"email": email, "code": osmand_code})
    assert reply.status == 400 and reply.error_code() == "code_unknown", reply
    assert len((await victim.call("GET", "/api/auth/devices")).body["devices"]) == 1


async def test_a_login_code_never_deletes_an_account_on_either_api(stack, gateway, unique_email):
    device = await osmand_sign_in(gateway.with_token(None), stack.smtp_sink_url, unique_email)
    creds = {"deviceid": device["id"], "accessToken": device["accesstoken"]}
    before = await count_mails(gateway.session, stack.smtp_sink_url, unique_email)
    await advance_clock(stack, RESEND_SECONDS + 1)
    reply = await gateway.call("POST", "/userdata/user-register", data={
        "email": unique_email, "login": "true", "lang": "en", "deviceid": str(uuid.uuid4())})
    assert reply.status == 200, reply
    login_code = await read_code(gateway.session, stack.smtp_sink_url, unique_email, after=before)
    body = {"username": unique_email, "password": None, "token": login_code}
    assert osmand_error(await gateway.call("POST", "/userdata/auth/confirm-code", json=body)) == 104
    assert osmand_error(await gateway.call("POST", "/userdata/delete-account", params=creds, json=body)) == 104
    native = gateway.with_token(device["accesstoken"])
    reply = await native.call("POST", "/api/auth/account/delete", json={"code": login_code})
    assert reply.status == 400 and reply.error_code() == "code_unknown", reply
    assert (await gateway.call("GET", "/userdata/user-validate-sub", params=creds)).status == 200


# ---------------------------------------------------------------- strangers cannot lock the owner out
async def test_strangers_flooding_and_guessing_from_elsewhere_do_not_stop_the_owner(stack, gateway, unique_email):
    email = unique_email
    async with client_at(stack, new_address()) as owner, client_at(stack, new_address()) as x1, \
            client_at(stack, new_address()) as x2:
        reply = await owner.call("POST", "/api/auth/login-codes", json={"email": email})
        assert reply.status == 202, reply
        held = await read_code(owner.session, stack.smtp_sink_url, email)  # the code from the inbox

        # strangers at two other addresses flood code requests and guess, at once
        async def attack(x: GatewayClient) -> list:
            requests = [x.call("POST", "/api/auth/login-codes", json={"email": email}) for _ in range(10)]
            guesses = [x.call("POST", "/api/auth/sessions", json={"email": email, "code": str(n).zfill(12)})
                       for n in range(10)]
            return await asyncio.gather(*requests, *guesses)
        replies = [r for batch in await asyncio.gather(attack(x1), attack(x2)) for r in batch]
        assert {r.status for r in replies} <= {202, 400, 429}, Counter(r.status for r in replies)
        assert not any(r.status == 201 for r in replies)

        # the code the owner holds still works: not replaced, its own tries untouched
        reply = await owner.call("POST", "/api/auth/sessions", json={"email": email, "code": held})
        assert reply.status == 201, reply

        # and the owner can still get a new code and use it
        await advance_clock(stack, RESEND_SECONDS + 1)
        before = await count_mails(owner.session, stack.smtp_sink_url, email)
        reply = await owner.call("POST", "/api/auth/login-codes", json={"email": email})
        assert reply.status == 202, reply
        fresh = await read_code(owner.session, stack.smtp_sink_url, email, after=before)
        for n in range(1, 4):  # strangers guessing the owner's new code spend only their shared tries
            wrong = str((int(fresh) + n) % 10 ** 12).zfill(12)
            await x1.call("POST", "/api/auth/sessions", json={"email": email, "code": wrong})
        stranger = await x2.call("POST", "/api/auth/sessions", json={"email": email, "code": fresh})
        assert stranger.status == 400, stranger  # even the right code: no tries left for strangers
        reply = await owner.call("POST", "/api/auth/sessions", json={"email": email, "code": fresh})
        assert reply.status == 201, reply


async def test_strangers_using_up_the_hourly_codes_do_not_stop_the_owner_where_they_logged_in_before(
        stack, gateway, unique_email):
    email = unique_email
    async with client_at(stack, new_address()) as owner, client_at(stack, new_address()) as x1, \
            client_at(stack, new_address()) as x2, client_at(stack, new_address()) as newcomer:
        await login(owner, stack.smtp_sink_url, email=email)  # the owner's address is known now
        refused = None
        for _ in range(5):  # strangers ask for codes as often as they may, from two addresses
            await advance_clock(stack, RESEND_SECONDS + 1)
            for x in (x1, x2):
                reply = await x.call("POST", "/api/auth/login-codes", json={"email": email})
                refused = refused or (reply if reply.status == 429 else None)
        assert refused is not None and refused.error_code() == "too_many_codes_for_email", refused
        # a person at a new address has to wait for the hour (the documented worst delay) ...
        reply = await newcomer.call("POST", "/api/auth/login-codes", json={"email": email})
        assert reply.status == 429 and reply.body["error"]["retry_after_seconds"] <= 3600, reply
        # ... the owner, where they logged in before, does not
        before = await count_mails(owner.session, stack.smtp_sink_url, email)
        reply = await owner.call("POST", "/api/auth/login-codes", json={"email": email})
        assert reply.status == 202, reply
        code = await read_code(owner.session, stack.smtp_sink_url, email, after=before)
        assert (await owner.call("POST", "/api/auth/sessions", json={"email": email, "code": code})).status == 201


async def test_confirm_code_from_strangers_does_not_burn_the_owners_deletion_code(stack, gateway, unique_email):
    device = await osmand_sign_in(gateway.with_token(None), stack.smtp_sink_url, unique_email)
    creds = {"deviceid": device["id"], "accessToken": device["accesstoken"]}
    async with client_at(stack, new_address()) as owner, client_at(stack, new_address()) as stranger:
        before = await count_mails(owner.session, stack.smtp_sink_url, unique_email)
        reply = await owner.call("POST", "/userdata/send-code", params=creds,
                                 json={"email": unique_email, "action": "delete", "lang": "en"})
        assert reply.status == 200, reply
        code = await read_code(owner.session, stack.smtp_sink_url, unique_email, after=before)
        for n in range(10):
            reply = await stranger.call("POST", "/userdata/auth/confirm-code",
                                        json={"username": unique_email, "password": None, "token": str(n)})
            assert osmand_error(reply) == 104, reply
        body = {"username": unique_email, "password": None, "token": code}
        assert (await owner.call("POST", "/userdata/auth/confirm-code", json=body)).status == 200
        assert (await owner.call("POST", "/userdata/delete-account", params=creds, json=body)).status == 200


# ---------------------------------------------------------------- unauthenticated calls
async def test_user_update_orderid_without_credentials_changes_nothing_and_reveals_nothing(stack, gateway):
    me, session = await login(gateway, stack.smtp_sink_url)
    anonymous = gateway.with_token(None)
    # an empty orderid does not clear anything (the reference cleared it for anyone)
    reply = await anonymous.call("POST", "/userdata/user-update-orderid",
                                 data={"email": session["email"], "orderid": "", "deviceid": "x"})
    assert reply.status == 200, reply
    # without a valid order, a registered and an unknown e-mail answer the same
    known = await anonymous.call("POST", "/userdata/user-update-orderid",
                                 data={"email": session["email"], "orderid": "GPA.none", "deviceid": "x"})
    unknown = await anonymous.call("POST", "/userdata/user-update-orderid",
                                   data={"email": f"nobody-{uuid.uuid4().hex[:8]}@example.test",
                                         "orderid": "GPA.none", "deviceid": "x"})
    assert osmand_error(known) == osmand_error(unknown) == 102, (known, unknown)
    assert known.body["error"]["message"] == unknown.body["error"]["message"]
    # nor does confirm-code tell a registered e-mail from an unknown one
    body = {"password": None, "token": "123456789012"}
    for email in (session["email"], f"nobody-{uuid.uuid4().hex[:8]}@example.test"):
        reply = await anonymous.call("POST", "/userdata/auth/confirm-code", json={**body, "username": email})
        assert osmand_error(reply) == 104, reply


async def test_user_update_orderid_is_rate_limited_at_the_gateway(stack):
    async with client_at(stack, new_address()) as x:
        replies = await asyncio.gather(*(x.call("POST", "/userdata/user-update-orderid", data={
            "email": f"probe-{n}@example.test", "orderid": "", "deviceid": "x"}) for n in range(250)))
    # the gateway's refusal is in OsmAnd's shape (HTTP 400, errorCode 6 "try later"), as every
    # /userdata/ answer is (docs/osmand-compatibility.md)
    outcomes = Counter("limited" if r.status == 400 and osmand_error(r) == 6 else r.status for r in replies)
    assert outcomes["limited"] > 0 and set(outcomes) <= {200, "limited"}, outcomes


# ---------------------------------------------------------------- no secret in any log
async def test_no_token_code_or_receipt_used_in_a_run_reaches_any_log(stack, gateway, unique_email):
    if not stack.logs_dir:
        pytest.skip("this system's logs are not on this machine (mode env)")
    anonymous = gateway.with_token(None)
    # an OsmAnd device: its code in a form body, its accessToken in queries (twice in one)
    before = await count_mails(gateway.session, stack.smtp_sink_url, unique_email)
    phone = str(uuid.uuid4())
    assert (await anonymous.call("POST", "/userdata/user-register", data={
        "email": unique_email, "login": "false", "lang": "en", "deviceid": phone})).status == 200
    code = await read_code(gateway.session, stack.smtp_sink_url, unique_email, after=before)
    device = (await anonymous.call("POST", "/userdata/device-register", data={
        "email": unique_email, "token": code, "deviceid": phone, "brand": "G", "model": "P", "lang": "en"})).body
    token = device["accesstoken"]
    assert (await anonymous.call("GET", "/userdata/list-files",
                                 params={"deviceid": device["id"], "accessToken": token})).status == 200
    await anonymous.call("GET", f"/userdata/user-validate-sub?accessToken={token}&deviceid={device['id']}"
                                f"&accesstoken={token}")
    await anonymous.call("GET", "/userdata/list-files", params={"deviceid": device["id"], "accessToken": token + "x"})
    # a native device token, and a receipt
    me, session = await login(gateway, stack.smtp_sink_url)
    receipt = forged_receipt("GPA.logged")
    await me.call("POST", "/api/billing/purchases", json={"platform": "sandbox", "product_id": "osmcloud.pro.annual",
                                                          "order_id": "GPA.logged", "receipt": receipt})
    await anonymous.call("POST", "/userdata/user-update-orderid",
                         data={"email": unique_email, "orderid": receipt, "deviceid": phone})
    secrets = {"OsmAnd accessToken": token, "OsmAnd code": code, "native token": me.token, "receipt": receipt}
    await asyncio.sleep(0.5)  # nginx and the services write their lines as they answer; let them land
    from pathlib import Path
    logs = sorted(p for p in Path(stack.logs_dir).iterdir() if p.is_file())
    assert any(p.name == "nginx-access.log" for p in logs) and len(logs) >= 6, logs
    for path in logs:
        text = path.read_text(errors="replace")
        for what, value in secrets.items():
            assert value not in text, f"{what} appears in {path.name}"
    access = (Path(stack.logs_dir) / "nginx-access.log").read_text()
    assert "/userdata/list-files?deviceid=" in access and "accessToken=***" in access


# ---------------------------------------------------------------- clients behind a trusted proxy
# The test stack trusts 127.0.0.1 as a proxy in front of the gateway (TEST_TRUSTED_PROXIES);
# the other loopback addresses are clients outside it.
def behind_proxy(client_address: str) -> dict[str, str]:
    return {"X-Forwarded-For": client_address}


async def test_limits_apply_per_client_behind_a_trusted_proxy(stack, gateway):
    proxy = gateway.with_token(None)  # connects from 127.0.0.1
    a, b = f"198.51.100.{uuid.uuid4().int % 250 + 1}", f"203.0.113.{uuid.uuid4().int % 250 + 1}"
    flood = await asyncio.gather(*(proxy.call("POST", "/api/auth/sessions", headers=behind_proxy(a),
                                              json={"email": f"guess-{n}@example.test", "code": "1"})
                                   for n in range(250)))
    assert any(r.status == 429 for r in flood), Counter(r.status for r in flood)
    # another client behind the same proxy is not limited by the first one's flood
    reply = await proxy.call("POST", "/api/auth/sessions", headers=behind_proxy(b),
                             json={"email": "guess@example.test", "code": "1"})
    assert reply.status == 400 and reply.error_code() == "code_unknown", reply
    # and auth tells them apart: each gets a code of its own for the same e-mail at once
    email = f"shared-{uuid.uuid4().hex[:8]}@example.test"
    first, second = await asyncio.gather(*(proxy.call("POST", "/api/auth/login-codes", headers=behind_proxy(c),
                                                      json={"email": email}) for c in (a, b)))
    assert (first.status, second.status) == (202, 202), (first, second)


async def test_a_client_outside_the_trusted_proxies_cannot_spoof_its_address(stack):
    async with client_at(stack, new_address()) as outsider:
        flood = await asyncio.gather(*(outsider.call(
            "POST", "/api/auth/sessions", headers=behind_proxy(f"192.0.2.{n % 250 + 1}"),
            json={"email": f"guess-{n}@example.test", "code": "1"}) for n in range(250)))
        assert any(r.status == 429 for r in flood), Counter(r.status for r in flood)
        # auth sees the outsider's own address, whatever it claims: one code per 30 s for one e-mail
        email = f"spoof-{uuid.uuid4().hex[:8]}@example.test"  # login-codes: another zone than the flood's
        replies = [await outsider.call("POST", "/api/auth/login-codes", headers=behind_proxy(f"192.0.2.{n}"),
                                       json={"email": email}) for n in (1, 2)]
        assert [r.status for r in replies] == [202, 429], replies
        assert replies[1].error_code() == "code_recently_sent", replies[1]
