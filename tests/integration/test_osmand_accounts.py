"""OsmAnd's /userdata/ account flows, written from the protocol (../shared/OSMAND-PROTOCOL.md)
as the app speaks them, through the gateway: FORM posts, query credentials, JSON bodies,
errors `{"error":{"errorCode":N}}` with HTTP 400. The same accounts and devices must be seen
by the native API, and one logout (either API) ends both."""

import re
import uuid

from osmcloud_localstack.client import GatewayClient, Reply, count_mails, eventually, login, read_code
from osmcloud_localstack.testing import advance_clock

RESEND_SECONDS = 30
FIVE_DEVICE_FIELDS = ("id", "userid", "deviceid", "accesstoken", "udpatetime")
JAVA_MEDIUM_DATE = re.compile(r"^[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2}:\d{2} (AM|PM)$")


def osmand_error(reply: Reply) -> int | None:
    """The protocol's errorCode of a 400, or None when the reply is not a protocol error."""
    if reply.status != 400 or not isinstance(reply.body, dict):
        return None
    return reply.body.get("error", {}).get("errorCode")


class App:
    """What OsmAnd's app sends, parameter for parameter."""

    def __init__(self, gateway: GatewayClient, phone_id: str | None = None, model: str = "Pixel 8") -> None:
        self.gw, self.phone_id, self.model = gateway.with_token(None), phone_id or str(uuid.uuid4()), model
        self.device: dict | None = None

    def creds(self, device: dict | None = None) -> dict[str, str]:
        device = device or self.device
        return {"deviceid": device["id"], "accessToken": device["accesstoken"]}

    async def user_register(self, email: str, login: bool = False) -> Reply:
        return await self.gw.call("POST", "/userdata/user-register", data={
            "email": email, "login": "true" if login else "false", "lang": "en", "deviceid": self.phone_id})

    async def device_register(self, email: str, token: str) -> Reply:
        reply = await self.gw.call("POST", "/userdata/device-register", data={
            "email": email, "token": token, "deviceid": self.phone_id, "brand": "Google", "model": self.model,
            "lang": "en", "orderid": ""})
        if reply.status == 200:
            self.device = reply.body
        return reply

    async def validate_sub(self, device: dict | None = None) -> Reply:
        return await self.gw.call("GET", "/userdata/user-validate-sub", params=self.creds(device))

    async def sign_in(self, sink_url: str, email: str, login: bool = False) -> dict:
        before = await count_mails(self.gw.session, sink_url, email)
        reply = await self.user_register(email, login=login)
        assert reply.status == 200 and reply.body == {"status": "ok"}, reply
        code = await read_code(self.gw.session, sink_url, email, after=before)
        assert re.fullmatch(r"\d{12}", code), f"OsmAnd codes have 12 digits (the apps take any number), got {code!r}"
        reply = await self.device_register(email, code)
        assert reply.status == 200, reply
        return reply.body


async def test_sign_up_through_userdata_then_one_account_for_both_apis(stack, gateway, unique_email):
    app = App(gateway)
    # login probe on an unknown e-mail: 103 "not registered"
    assert osmand_error(await app.device_register(unique_email, "")) == 103

    device = await app.sign_in(stack.smtp_sink_url, unique_email)
    for field in FIVE_DEVICE_FIELDS:
        assert isinstance(device[field], str) and device[field], (field, device)
    assert device["id"].isdigit() and device["userid"].isdigit()
    assert device["deviceid"] == app.phone_id
    assert JAVA_MEDIUM_DATE.match(device["udpatetime"]), device["udpatetime"]

    reply = await app.validate_sub()
    assert reply.status == 200, reply
    assert "orderid" in reply.body and reply.body["id"] == int(device["userid"])
    print(f"\n  device-register → {device}\n  user-validate-sub → {reply.body}")

    # the account exists now: the probe says 104, a wrong code says 104, a sign-up says 111
    assert osmand_error(await app.device_register(unique_email, "")) == 104
    assert osmand_error(await app.device_register(unique_email, "0000x")) == 104
    assert osmand_error(await app.user_register(unique_email, login=False)) == 111

    # the native API sees the same account and the OsmAnd device; billing activated Start
    await advance_clock(stack, RESEND_SECONDS + 1)
    native, session = await login(gateway, stack.smtp_sink_url, unique_email)
    assert session["new_account"] is False
    devices = (await native.call("GET", "/api/auth/devices")).body["devices"]
    osmand_devices = [d for d in devices if d["platform"] == "osmand"]
    assert len(osmand_devices) == 1 and osmand_devices[0]["model"] == "Pixel 8", devices

    async def start_active():
        account = (await native.call("GET", "/api/billing/account")).body
        return account if account.get("plan") == "start" and account.get("status") == "active" else None
    print(f"  billing → {await eventually(start_active, what='Start activated for an OsmAnd sign-up')}")

    # a logout through the native API ends the OsmAnd device: 105 on its next call
    reply = await native.call("DELETE", f"/api/auth/devices/{osmand_devices[0]['id']}")
    assert reply.status == 200, reply
    assert osmand_error(await app.validate_sub()) == 105


async def test_a_native_account_gets_no_start_and_a_new_registration_replaces_the_device(
        stack, gateway, unique_email):
    native, _ = await login(gateway, stack.smtp_sink_url, unique_email)
    app = App(gateway)
    assert osmand_error(await app.device_register(unique_email, "")) == 104  # known account

    await advance_clock(stack, RESEND_SECONDS + 1)
    first = await app.sign_in(stack.smtp_sink_url, unique_email, login=True)
    assert (await app.validate_sub(first)).status == 200
    await advance_clock(stack, RESEND_SECONDS + 1)
    second = await app.sign_in(stack.smtp_sink_url, unique_email, login=True)
    assert second["id"] != first["id"] and second["accesstoken"] != first["accesstoken"]
    assert osmand_error(await app.validate_sub(first)) == 105  # replaced: (user, phone, model) again
    assert (await app.validate_sub(second)).status == 200
    other_phone = App(gateway, model="iPhone")
    await advance_clock(stack, RESEND_SECONDS + 1)
    await other_phone.sign_in(stack.smtp_sink_url, unique_email, login=True)
    assert (await app.validate_sub(second)).status == 200  # another phone does not replace it

    devices = (await native.call("GET", "/api/auth/devices")).body["devices"]
    assert sorted(d["model"] for d in devices if d["platform"] == "osmand") == ["Pixel 8", "iPhone"]
    account = (await native.call("GET", "/api/billing/account")).body
    assert account["plan"] is None, "Start is activated only for sign-ups through /userdata/"


async def test_send_code_confirm_code_and_delete_account(stack, gateway, unique_email):
    app = App(gateway)
    await app.sign_in(stack.smtp_sink_url, unique_email)

    before = await count_mails(gateway.session, stack.smtp_sink_url, unique_email)
    reply = await app.gw.call("POST", "/userdata/send-code", params=app.creds(),
                              json={"email": unique_email, "action": "delete", "lang": "en"})
    assert reply.status == 200 and reply.body == {"status": "ok"}, reply
    code = await read_code(gateway.session, stack.smtp_sink_url, unique_email, after=before)
    assert re.fullmatch(r"\d{12}", code)

    wrong = "0000" if code != "0000" else "1111"
    confirm = {"username": unique_email, "password": None}
    assert osmand_error(await app.gw.call("POST", "/userdata/auth/confirm-code",
                                          json={**confirm, "token": wrong})) == 104
    reply = await app.gw.call("POST", "/userdata/auth/confirm-code", json={**confirm, "token": code})
    assert reply.status == 200, reply
    # confirm-code does not use the code up: delete-account takes the same one
    assert osmand_error(await app.gw.call("POST", "/userdata/delete-account", params=app.creds(),
                                          json={**confirm, "token": wrong})) == 104
    reply = await app.gw.call("POST", "/userdata/delete-account", params=app.creds(), json={**confirm, "token": code})
    assert reply.status == 200, reply

    assert osmand_error(await app.validate_sub()) == 105
    assert osmand_error(await app.device_register(unique_email, "")) == 103  # no account, no pending code


async def test_deletion_through_userdata_ends_native_tokens(stack, gateway, unique_email):
    native, _ = await login(gateway, stack.smtp_sink_url, unique_email)
    await advance_clock(stack, RESEND_SECONDS + 1)
    app = App(gateway)
    await app.sign_in(stack.smtp_sink_url, unique_email, login=True)
    before = await count_mails(gateway.session, stack.smtp_sink_url, unique_email)
    reply = await app.gw.call("POST", "/userdata/send-code", params=app.creds(),
                              json={"email": unique_email.upper(), "action": "delete", "lang": "en"})
    assert reply.status == 200, reply
    code = await read_code(gateway.session, stack.smtp_sink_url, unique_email, after=before)
    reply = await app.gw.call("POST", "/userdata/delete-account", params=app.creds(),
                              json={"username": unique_email, "password": None, "token": code})
    assert reply.status == 200, reply
    assert (await native.call("GET", "/api/auth/account")).status == 401


async def test_bad_input_answers_the_documented_codes(stack, gateway, unique_email):
    app = App(gateway)
    gw = app.gw
    checks = {
        "user-register without e-mail": (await gw.call("POST", "/userdata/user-register", data={"lang": "en"}), 101),
        "user-register malformed e-mail": (await app.user_register("no-at-sign"), 101),
        "device-register malformed e-mail": (await app.device_register("a@b", "1234"), 101),
        "device-register unknown user": (await app.device_register(unique_email, "1234"), 103),
        "validate-sub without credentials": (await gw.call("GET", "/userdata/user-validate-sub"), 105),
        "validate-sub with the phone UUID": (await app.validate_sub({"id": str(uuid.uuid4()), "accesstoken": "x"}),
                                             105),
        "validate-sub with a wrong token": (await app.validate_sub({"id": "1", "accesstoken": "nope"}), 105),
        "send-code without credentials": (await gw.call("POST", "/userdata/send-code",
                                                        json={"email": unique_email, "action": "delete"}), 105),
        "delete-account with a wrong token": (await gw.call("POST", "/userdata/delete-account",
                                                            params={"deviceid": "1", "accessToken": "nope"},
                                                            json={"username": unique_email, "token": "1234"}), 105),
        "confirm-code unknown user": (await gw.call("POST", "/userdata/auth/confirm-code",
                                                    json={"username": unique_email, "password": None,
                                                          "token": "1234"}), 104),  # reveals nothing
        "confirm-code malformed JSON": (await gw.call("POST", "/userdata/auth/confirm-code", data=b"{nope",
                                                      headers={"Content-Type": "application/json"}), 400),
        # no credential: the order is judged first, so an unknown e-mail is not revealed
        "update-orderid unknown user": (await gw.call("POST", "/userdata/user-update-orderid",
                                                      data={"email": unique_email, "orderid": "x"}), 102),
    }
    for what, (reply, code) in checks.items():
        assert osmand_error(reply) == code, (what, reply)

    # an account exists now: a pending code (user-register) lets device-register judge codes
    await app.sign_in(stack.smtp_sink_url, unique_email)
    reply = await gw.call("POST", "/userdata/send-code", params=app.creds(),
                          json={"email": unique_email, "action": "rename"})
    assert osmand_error(reply) == 400, reply
    # like the reference, the body's e-mail does not choose the address: the code goes to the
    # device's own account
    before = await count_mails(gw.session, stack.smtp_sink_url, unique_email)
    reply = await gw.call("POST", "/userdata/send-code", params=app.creds(),
                          json={"email": "someone-else@example.test", "action": "delete"})
    assert reply.status == 200, reply
    assert re.fullmatch(r"\d{12}", await read_code(gw.session, stack.smtp_sink_url, unique_email, after=before))
    assert await count_mails(gw.session, stack.smtp_sink_url, "someone-else@example.test") == 0
    reply = await gw.call("POST", "/userdata/user-update-orderid",
                          data={"email": unique_email, "orderid": "", "deviceid": app.phone_id})
    assert reply.status == 200 and reply.body == {"status": "ok"}, reply
    reply = await gw.call("POST", "/userdata/user-update-orderid",
                          data={"email": unique_email, "orderid": "GPA.0000-unknown", "deviceid": app.phone_id})
    assert osmand_error(reply) == 102, reply  # no purchase can be verified here yet: unknown order

    reply = await gw.call("GET", "/userdata/list-files-not-here")
    assert osmand_error(reply) == 400, reply  # every /userdata/ error is HTTP 400 in the protocol's shape
