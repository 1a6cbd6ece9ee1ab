"""Auth's use cases on fakes (in-memory store and limits, a mailer that keeps what it sends, a
recording publisher, a fixed clock), wired by the same bootstrap as app.py: codes issued and
checked, their limits, sign-in with its event, devices, deletion. No Mongo, SMTP or HTTP."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from osmcloud_auth.billing_client import OrderAnswer
from osmcloud_auth.bootstrap import Auth, bootstrap
from osmcloud_auth.domain import Purpose
from osmcloud_auth.errors import AccountGone, CodeRejected, DeviceNotFound, MailFailed, TooManyCodes, UnknownAccount
from osmcloud_auth.limits import address_key, email_key
from osmcloud_auth.osmand_compat import osmand_error
from osmcloud_auth.routes import native_error
from osmcloud_auth.settings import AuthSettings
from osmcloud_common.clock import FixedClock
from osmcloud_common.outbox import decode_value
from osmcloud_common.publisher import RecordingPublisher

START = datetime(2026, 5, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
EMAIL, HOME, ELSEWHERE = "ann@example.org", "192.0.2.1", "198.51.100.7"


class FakeLimits:
    """LimitsPort in memory: fixed windows per key, as limits.RequestLimits keeps them."""

    def __init__(self, window: timedelta = HOUR) -> None:
        self.window, self.windows = window, {}  # type: dict[str, dict[str, Any]]

    async def take(self, key: str, limit: int, now: datetime) -> datetime | None:
        current = self.windows.get(key)
        if current is None or current["started_at"] <= now - self.window:
            self.windows[key] = {"started_at": now, "count": 1}
            return None
        if current["count"] < limit:
            current["count"] += 1
            return None
        reopens: datetime = current["started_at"] + self.window
        return reopens

    async def give_back(self, key: str) -> None:
        if self.windows.get(key, {}).get("count", 0) > 0:
            self.windows[key]["count"] -= 1

    async def forget_email(self, email: str) -> None:
        for key in [k for k in self.windows if re.match(re.escape(email_key(email)) + r"(\||$)", k)]:
            del self.windows[key]


class FakeMailer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Purpose]] = []
        self.down = False

    async def send_code(self, to: str, code: str, purpose: Purpose, valid_minutes: int) -> None:
        if self.down:
            raise ConnectionError("smtp away")
        self.sent.append((to, code, purpose))

    def last(self) -> str:
        return self.sent[-1][1]


class FakeAuthStore:
    """The store's codes, users and devices in memory, with store.AuthStore's conditional writes."""

    def __init__(self) -> None:
        self.codes: dict[str, dict[str, Any]] = {}
        self.known: dict[str, datetime] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.devices: dict[str, dict[str, Any]] = {}
        self.tombstones: dict[str, dict[str, Any]] = {}
        self.numbers = 0

    # codes
    async def replace_code(self, email: str, purpose: Purpose, address: str, code_digest: str, now: datetime,
                           ttl: timedelta, resend_after: timedelta) -> datetime | None:
        code_id = f"{purpose}:{email}:{address}"
        current = self.codes.get(code_id)
        if current is not None and current["sent_at"] > now - resend_after:
            retry: datetime = current["sent_at"] + resend_after
            return retry
        self.codes[code_id] = {"_id": code_id, "email": email, "purpose": str(purpose), "address": address,
                               "code_digest": code_digest, "sent_at": now, "expires_at": now + ttl, "attempts": 0,
                               "attempts_elsewhere": 0, "used": False}
        return None

    async def codes_for(self, email: str, purpose: Purpose) -> list[dict[str, Any]]:
        return [dict(c) for c in self.codes.values() if (c["email"], c["purpose"]) == (email, str(purpose))]

    async def take_try(self, code_id: str, field: str, limit: int) -> bool:
        code = self.codes.get(code_id)
        if code is None or code["used"] or code[field] >= limit:
            return False
        code[field] += 1
        return True

    async def mark_used(self, code_id: str, code_digest: str) -> bool:
        code = self.codes.get(code_id)
        if code is None or code["used"] or code["code_digest"] != code_digest:
            return False
        code["used"] = True
        return True

    async def remember_address(self, email: str, where: str, now: datetime) -> None:
        self.known[f"{email}|{where}"] = now

    async def is_known_address(self, email: str, where: str, since: datetime) -> bool:
        return self.known.get(f"{email}|{where}", datetime.min.replace(tzinfo=UTC)) >= since

    # users and devices
    async def user_by_email(self, email: str) -> dict[str, Any] | None:
        return next((u for u in self.users.values() if u["email"] == email), None)

    async def user(self, user_id: str) -> dict[str, Any] | None:
        return self.users.get(user_id)

    async def user_num(self, user: dict[str, Any]) -> int:
        num: int = user["num"]
        return num

    async def set_orderid(self, user_id: str, orderid: str | None) -> None:
        self.users[user_id]["orderid"] = orderid

    async def create_user(self, email: str, now: datetime, events_for: Any) -> tuple[dict[str, Any], bool]:
        existing = await self.user_by_email(email)
        if existing is not None:
            return existing, False
        self.numbers += 1
        user_id = f"user{self.numbers}"
        self.users[user_id] = {"_id": user_id, "email": email, "created_at": now, "num": self.numbers,
                               "_outbox": events_for(user_id)}
        return self.users[user_id], True

    async def add_device(self, user_id: str, token_digest: str, description: dict[str, str], now: datetime,
                         user_num: int | None = None) -> dict[str, Any]:
        device = {"_id": token_digest, "device_id": f"d{len(self.devices) + 1}", "user_id": user_id, **description,
                  "num": len(self.devices) + 1, "user_num": user_num, "created_at": now, "revoked_at": None,
                  "_outbox": []}
        self.devices[token_digest] = device
        return device

    async def live_devices_like(self, user_id: str, phone_id: str, model: str) -> list[dict[str, Any]]:
        return [d for d in self.devices.values() if (d["user_id"], d.get("phone_id"), d.get("model"),
                                                     d["revoked_at"]) == (user_id, phone_id, model, None)]

    async def devices_of(self, user_id: str) -> list[dict[str, Any]]:
        return [d for d in self.devices.values() if (d["user_id"], d["revoked_at"]) == (user_id, None)]

    async def revoke_device(self, user_id: str, device_id: str, now: datetime, events: list[dict[str, Any]]) -> bool:
        for device in self.devices.values():
            if (device["device_id"], device["user_id"], device["revoked_at"]) == (device_id, user_id, None):
                device["revoked_at"] = now
                device["_outbox"] += events
                return True
        return False

    async def record_deletion(self, user_id: str, now: datetime, events: list[dict[str, Any]]) -> bool:
        if user_id in self.tombstones:
            return False
        self.tombstones[user_id] = {"deleted_at": now, "_outbox": events}
        return True

    async def erase_account(self, user_id: str, forget_email: Any) -> int:
        user = self.users.pop(user_id, None)
        gone = [k for k, d in self.devices.items() if d["user_id"] == user_id]
        for key in gone:
            del self.devices[key]
        if user is not None:
            self.codes = {k: c for k, c in self.codes.items() if c["email"] != user["email"]}
            await forget_email(user["email"])
        return len(gone) + (user is not None)


class FakeBilling:
    async def order(self, orderid: str, user_id: str | None, link: bool) -> OrderAnswer:
        return OrderAnswer("linked" if orderid == "good" else "other_account", "")


class World:
    def __init__(self, **settings: Any) -> None:
        self.clock = FixedClock(START)
        self.store, self.limits, self.mailer = FakeAuthStore(), FakeLimits(), FakeMailer()
        self.publisher = RecordingPublisher(self.clock, producer="auth")
        self.settings = AuthSettings(**settings)
        self.auth: Auth = bootstrap(self.settings, store=self.store, limits=self.limits, mailer=self.mailer,
                                    publisher=self.publisher, clock=self.clock, billing=FakeBilling())

    async def mailed_code(self, purpose: Purpose = Purpose.LOGIN, address: str = HOME, email: str = EMAIL) -> str:
        await self.auth.codes.issue(email, purpose, address)
        return self.mailer.last()

    async def rejected(self, code: str, purpose: Purpose = Purpose.LOGIN, address: str = HOME) -> str:
        with pytest.raises(CodeRejected) as caught:
            await self.auth.codes.check(EMAIL, purpose, code, address)
        return caught.value.code


@pytest.fixture
def world() -> World:
    return World()


def outbox(doc: dict[str, Any]) -> list[str]:
    return [decode_value(e).type for e in doc["_outbox"]]


async def test_a_mailed_code_signs_in_once_and_creates_the_account_with_its_event(world: World) -> None:
    code = await world.mailed_code()
    signed = await world.auth.accounts.sign_in(EMAIL, Purpose.LOGIN, code, HOME)
    assert signed.created and outbox(signed.user) == ["account-registered"]
    # every sign-up is handed to billing before it answers (its default plan, an operator's grant)
    assert [(t, [decode_value(e).type for e in entries]) for t, entries in world.publisher.handed] == \
        [("billing", ["account-registered"])]
    assert await world.rejected(code) == "code_used"
    world.clock.advance(timedelta(minutes=1))
    again = await world.auth.accounts.sign_in(EMAIL, Purpose.LOGIN, await world.mailed_code(), HOME)
    assert not again.created and again.user["_id"] == signed.user["_id"]
    assert len(world.publisher.handed) == 1  # a sign-in to an existing account hands nothing over


async def test_wrong_tries_are_counted_first_and_exhaust_the_code(world: World) -> None:
    code = await world.mailed_code()
    for _ in range(world.settings.code_max_attempts):
        assert await world.rejected("000") == "code_wrong"
    assert await world.rejected(code) == "code_exhausted"  # right, but out of tries


async def test_strangers_cannot_use_up_the_owners_tries(world: World) -> None:
    code = await world.mailed_code()
    for _ in range(world.settings.code_max_attempts_elsewhere):
        assert await world.rejected("000", address=ELSEWHERE) == "code_wrong"
    assert await world.rejected(code, address=ELSEWHERE) == "code_exhausted"  # the others' budget is spent
    await world.auth.codes.check(EMAIL, Purpose.LOGIN, code, HOME)  # the owner's is whole


async def test_a_code_unlocks_only_its_purpose_and_only_until_it_expires(world: World) -> None:
    code = await world.mailed_code(Purpose.LOGIN)
    with pytest.raises(CodeRejected) as caught:
        await world.auth.codes.check(EMAIL, Purpose.DELETE_ACCOUNT, code, HOME)
    assert caught.value.code == "code_unknown" and "POST /api/auth/account/deletion-codes" in caught.value.message
    world.clock.advance(timedelta(seconds=world.settings.code_ttl_seconds))
    assert await world.rejected(code) == "code_expired"


async def test_checking_without_using_keeps_the_code_good(world: World) -> None:
    code = await world.mailed_code(Purpose.OSMAND_DELETE_ACCOUNT)
    await world.auth.codes.check(EMAIL, Purpose.OSMAND_DELETE_ACCOUNT, code, HOME, use=False)
    await world.auth.codes.check(EMAIL, Purpose.OSMAND_DELETE_ACCOUNT, code, HOME)
    assert await world.rejected(code, Purpose.OSMAND_DELETE_ACCOUNT) == "code_used"


async def test_a_resend_within_the_cooldown_is_refused_and_counts_nothing(world: World) -> None:
    await world.mailed_code()
    counts = {k: w["count"] for k, w in world.limits.windows.items()}
    with pytest.raises(TooManyCodes) as caught:
        await world.auth.codes.issue(EMAIL, Purpose.LOGIN, HOME)
    assert caught.value.code == "code_recently_sent" and caught.value.retry_after_seconds == 30
    assert {k: w["count"] for k, w in world.limits.windows.items()} == counts and len(world.mailer.sent) == 1


async def test_hourly_limits_per_email_and_address_reopen_after_the_hour(world: World) -> None:
    for _ in range(world.settings.code_requests_per_email_hour):
        await world.mailed_code()
        world.clock.advance(timedelta(seconds=world.settings.code_resend_seconds))
    with pytest.raises(TooManyCodes) as caught:
        await world.auth.codes.issue(EMAIL, Purpose.LOGIN, HOME)
    assert caught.value.code == "too_many_codes_for_email" and 0 < caught.value.retry_after_seconds <= 3600
    await world.mailed_code(address=ELSEWHERE)  # another address still gets one (its own count)
    world.clock.advance(HOUR)
    await world.mailed_code()


async def test_one_address_asking_for_many_e_mails_is_limited(world: World) -> None:
    limited = World(code_requests_per_address_hour=3)
    for n in range(3):
        await limited.mailed_code(email=f"u{n}@example.org")
    with pytest.raises(TooManyCodes) as caught:
        await limited.auth.codes.issue("u9@example.org", Purpose.LOGIN, HOME)
    assert caught.value.code == "too_many_codes_from_address"
    assert limited.limits.windows[address_key(HOME)]["count"] == 3


async def test_a_mail_that_cannot_be_sent_is_a_mail_failure(world: World) -> None:
    world.mailer.down = True
    with pytest.raises(MailFailed):
        await world.auth.codes.issue(EMAIL, Purpose.LOGIN, HOME)


async def test_an_osmand_sign_up_is_handed_to_billing_and_replaces_the_phones_earlier_device(world: World) -> None:
    signed = await world.auth.accounts.sign_in(EMAIL, Purpose.OSMAND_LOGIN,
                                               await world.mailed_code(Purpose.OSMAND_LOGIN), HOME, via="osmand")
    assert [(t, [decode_value(e).data.get("via") for e in entries]) for t, entries in world.publisher.handed] == \
        [("billing", ["osmand"])]
    _, first = await world.auth.accounts.register_osmand_device(signed, "phone-1", "Fair", "FP5")
    _, second = await world.auth.accounts.register_osmand_device(signed, "phone-1", "Fair", "FP5")
    assert first["revoked_at"] is not None and outbox(first) == ["device-logged-out"]
    assert second["revoked_at"] is None and second["user_num"] == signed.user["num"]


async def test_logging_out_a_device_writes_its_event_and_an_unknown_one_is_not_found(world: World) -> None:
    _, user, device, _ = await world.auth.accounts.register_device(EMAIL, await world.mailed_code(), {}, HOME)
    with pytest.raises(DeviceNotFound):
        await world.auth.accounts.log_out(user["_id"], "nope")
    await world.auth.accounts.log_out(user["_id"], device["device_id"])
    assert outbox(device) == ["device-logged-out"]
    with pytest.raises(DeviceNotFound):
        await world.auth.accounts.log_out(user["_id"], device["device_id"])


async def test_an_operators_logout_of_every_device_writes_one_event_each(world: World) -> None:
    _, user, first, _ = await world.auth.accounts.register_device(EMAIL, await world.mailed_code(), {}, HOME)
    world.clock.advance(timedelta(minutes=1))
    _, _, second, _ = await world.auth.accounts.register_device(EMAIL, await world.mailed_code(), {}, HOME)
    assert await world.auth.accounts.log_out_all(user["_id"]) == [first["device_id"], second["device_id"]]
    assert outbox(first) == ["device-logged-out"] == outbox(second)
    assert await world.auth.accounts.log_out_all(user["_id"]) == []  # none left: nothing written


async def test_deleting_an_account_records_one_event_and_erases_it(world: World) -> None:
    _, user, _, _ = await world.auth.accounts.register_device(EMAIL, await world.mailed_code(), {}, HOME)
    world.clock.advance(timedelta(minutes=1))
    await world.auth.deletion.request_code(user["_id"], HOME)
    with pytest.raises(CodeRejected):
        await world.auth.deletion.delete_with_code(user["_id"], "000", HOME)
    await world.auth.deletion.delete_with_code(user["_id"], world.mailer.last(), HOME)
    assert outbox(world.store.tombstones[user["_id"]]) == ["account-deleted"]
    assert world.store.users == {} and world.store.devices == {} and world.store.codes == {}
    assert not any(k.startswith(email_key(EMAIL)) for k in world.limits.windows)
    await world.auth.deletion.delete_account(user["_id"])  # again: idempotent, no second event
    assert outbox(world.store.tombstones[user["_id"]]) == ["account-deleted"]
    with pytest.raises(AccountGone):
        await world.auth.deletion.request_code(user["_id"], HOME)


def test_each_api_answers_domain_errors_in_its_own_shape() -> None:
    limited = TooManyCodes("a code was sent moments ago; ask again in 12 s", code="code_recently_sent",
                           retry_after_seconds=12)
    assert (native_error(limited).status, native_error(limited).body()) == (429, {"error": {
        "code": "code_recently_sent", "message": "a code was sent moments ago; ask again in 12 s",
        "retry_after_seconds": 12}})
    assert osmand_error(limited).body() == {"error": {"errorCode": 6, "message": (
        "a code was sent moments ago; ask again in 12 s; retry in 12 s")}} and osmand_error(limited).status == 400
    assert osmand_error(limited).reason == "code_recently_sent"  # counted by its own code
    mail = osmand_error(MailFailed("the code could not be mailed; try again shortly"))
    assert mail.body()["error"] == {"errorCode": 6, "message": "the code could not be mailed; try again shortly; "
                                                               "retry in a few seconds"}
    unknown = native_error(UnknownAccount("no account has this e-mail address"))  # the admin API's lookups
    assert (unknown.status, unknown.code) == (404, "unknown_account")
    wrong = CodeRejected("the code is wrong", code="code_wrong")
    assert native_error(wrong).status == 400
    assert osmand_error(wrong).body() == {"error": {"errorCode": 104, "message": "the code is wrong"}}
    gone = AccountGone("this account no longer exists")
    assert native_error(gone).body()["error"]["code"] == "unauthorized" and native_error(gone).status == 401
    assert osmand_error(gone).body()["error"]["errorCode"] == 105
