"""Login codes under bad input and abuse, through the gateway: malformed e-mails, unknown,
expired, used and exhausted codes, floods for one e-mail and from one address (429, and the
SMTP sink receives no more mails than the limit), forged identity headers."""

import asyncio
import ipaddress
import math
import time
import uuid
from collections import Counter
from urllib.parse import urlsplit

import aiohttp
import pytest

from osmcloud_localstack.client import GatewayClient, count_mails, login, read_code
from osmcloud_localstack.testing import advance_clock

# what gateway/default.conf.template allows per client address on the code endpoints
GATEWAY_RATE_PER_SECOND = 5
GATEWAY_BURST = 100
# auth's defaults (services/auth settings)
PER_EMAIL_HOUR = 5
RESEND_SECONDS = 30
CODE_TTL_SECONDS = 3600
MAX_ATTEMPTS = 5


def flood_address(stack) -> str | None:
    """A loopback address of its own for a flood, so it does not use up the allowance of
    127.0.0.1, from where the rest of the suite signs in; None if the gateway is not local."""
    host = urlsplit(stack.gateway_url).hostname or ""
    try:
        if not ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        return None
    return f"127.{uuid.uuid4().int % 250 + 2}.{uuid.uuid4().int % 250 + 2}.{uuid.uuid4().int % 250 + 2}"


async def request_code(client: GatewayClient, email: str):
    return await client.with_token(None).call("POST", "/api/auth/login-codes", json={"email": email})


async def submit(client: GatewayClient, email: str, code: str):
    return await client.with_token(None).call("POST", "/api/auth/sessions", json={"email": email, "code": code})


def other_code(code: str, n: int) -> str:
    return str((int(code) + n) % 10 ** len(code)).zfill(len(code))


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("email", ["", "not-an-email", "a@b", "two words@example.test", "x@" + "d" * 260 + ".com"])
async def test_a_malformed_email_is_refused_with_a_message(gateway, email):
    for path in ("/api/auth/login-codes", "/api/auth/sessions"):
        reply = await gateway.call("POST", path, json={"email": email, "code": "123456"})
        assert reply.status == 400, (path, reply)
        assert reply.error_code() == "invalid_email"
        assert "not a valid e-mail address" in reply.body["error"]["message"]


async def test_a_body_that_is_not_what_the_endpoint_needs_is_400(gateway):
    reply = await gateway.call("POST", "/api/auth/login-codes", data=b"email=a@b.cd")
    assert reply.status == 400 and "JSON" in reply.body["error"]["message"]
    reply = await gateway.call("POST", "/api/auth/sessions", json={"email": "a@example.test"})
    assert reply.status == 400 and "code" in reply.body["error"]["message"]


async def test_an_unknown_code_says_that_none_was_requested(gateway, unique_email):
    reply = await submit(gateway, unique_email, "123456")
    assert reply.status == 400 and reply.error_code() == "code_unknown"
    assert "no code was requested" in reply.body["error"]["message"]


async def test_an_expired_code_says_it_expired(stack, gateway, smtp, unique_email):
    assert (await request_code(gateway, unique_email)).status == 202
    code = await read_code(gateway.session, stack.smtp_sink_url, unique_email)
    await advance_clock(stack, CODE_TTL_SECONDS + 1)
    reply = await submit(gateway, unique_email, code)
    assert reply.status == 400 and reply.error_code() == "code_expired", reply
    assert "ask for a new one" in reply.body["error"]["message"]


async def test_a_code_is_good_once(stack, gateway, unique_email):
    assert (await request_code(gateway, unique_email)).status == 202
    code = await read_code(gateway.session, stack.smtp_sink_url, unique_email)
    assert (await submit(gateway, unique_email, code)).status == 201
    reply = await submit(gateway, unique_email, code)
    assert reply.status == 400 and reply.error_code() == "code_used"


async def test_the_sixth_try_is_refused_even_if_it_is_right(stack, gateway, unique_email):
    assert (await request_code(gateway, unique_email)).status == 202
    code = await read_code(gateway.session, stack.smtp_sink_url, unique_email)
    for n in range(1, MAX_ATTEMPTS + 1):
        reply = await submit(gateway, unique_email, other_code(code, n))
        assert reply.status == 400 and reply.error_code() == "code_wrong", (n, reply)
    reply = await submit(gateway, unique_email, code)
    assert reply.status == 400 and reply.error_code() == "code_exhausted", reply
    assert "too many wrong tries" in reply.body["error"]["message"]
    # a new code starts afresh
    await advance_clock(stack, RESEND_SECONDS + 1)
    assert (await request_code(gateway, unique_email)).status == 202
    fresh = await read_code(gateway.session, stack.smtp_sink_url, unique_email, after=1)
    assert (await submit(gateway, unique_email, fresh)).status == 201


# ---------------------------------------------------------------- floods
async def test_a_flood_for_one_email_mails_one_code(stack, gateway, unique_email):
    replies = await asyncio.gather(*(request_code(gateway, unique_email) for _ in range(20)))
    statuses = Counter(r.status for r in replies)
    assert statuses == {202: 1, 429: 19}, statuses
    for reply in replies:
        if reply.status == 429:
            assert reply.error_code() in ("code_recently_sent", "too_many_codes_for_email"), reply
            assert reply.body["error"]["retry_after_seconds"] >= 1
    # auth mails a code before it answers 202: every answer is in, so is every mail
    assert await count_mails(gateway.session, stack.smtp_sink_url, unique_email) == 1


async def test_an_email_gets_at_most_the_hourly_limit_of_codes(stack, gateway, unique_email):
    for n in range(PER_EMAIL_HOUR):
        if n:
            await advance_clock(stack, RESEND_SECONDS + 1)
        reply = await request_code(gateway, unique_email)
        assert reply.status == 202, (n, reply)
        assert reply.body["resend_after_seconds"] == RESEND_SECONDS
    await advance_clock(stack, RESEND_SECONDS + 1)
    over = await request_code(gateway, unique_email)
    assert over.status == 429 and over.error_code() == "too_many_codes_for_email", over
    wait = over.body["error"]["retry_after_seconds"]
    longest = 3600 - PER_EMAIL_HOUR * (RESEND_SECONDS + 1)  # the hour less the time the codes took
    assert longest - 10 <= wait <= longest, wait
    assert f"ask again in {wait} s" in over.body["error"]["message"]
    assert await count_mails(gateway.session, stack.smtp_sink_url, unique_email) == PER_EMAIL_HOUR
    # the window ends: codes flow again
    await advance_clock(stack, wait + 1)
    assert (await request_code(gateway, unique_email)).status == 202
    assert await count_mails(gateway.session, stack.smtp_sink_url, unique_email) == PER_EMAIL_HOUR + 1


async def _flood(stack, path: str, bodies: list[dict]) -> tuple[list[tuple[int, str | None]], float]:
    """Sends every body at once from an address of the flood's own; (status, error code) each."""
    address = flood_address(stack)
    connector = aiohttp.TCPConnector(limit=0, local_addr=(address, 0) if address else None)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = GatewayClient(session, stack.gateway_url)
        started = time.monotonic()
        replies = await asyncio.gather(*(client.call("POST", path, json=body) for body in bodies))
        elapsed = time.monotonic() - started
    if address is None:  # flooded from 127.0.0.1: let its bucket refill for the tests after us
        await asyncio.sleep(GATEWAY_BURST / GATEWAY_RATE_PER_SECOND + 1)
    return [(r.status, r.error_code()) for r in replies], elapsed


def _allowed(elapsed: float) -> int:
    return GATEWAY_BURST + math.ceil(GATEWAY_RATE_PER_SECOND * elapsed) + 1


async def test_a_flood_of_code_requests_from_one_address_is_cut_off_at_the_gateway(stack, gateway, smtp):
    prefix = f"flood-{uuid.uuid4().hex[:8]}-"
    emails = [f"{prefix}{n}@example.test" for n in range(2 * GATEWAY_BURST + 50)]
    replies, elapsed = await _flood(stack, "/api/auth/login-codes", [{"email": e} for e in emails])
    accepted = [r for r in replies if r[0] == 202]
    limited = [r for r in replies if r[0] == 429]
    assert len(accepted) + len(limited) == len(emails), Counter(replies)
    assert all(code == "rate_limited" for _, code in limited)  # nginx's own answer: auth never saw them
    assert GATEWAY_BURST <= len(accepted) <= _allowed(elapsed), (len(accepted), elapsed)

    async def mailed() -> int:
        return sum(1 for m in await smtp.messages() if any(to.startswith(prefix) for to in m["to"]))
    # auth mails a code before it answers: every answer is in, so is every mail
    assert await mailed() == len(accepted)  # one mail per accepted request, none for the rest


async def test_a_flood_of_code_checks_from_one_address_is_cut_off_at_the_gateway(stack):
    bodies = [{"email": f"guess-{n}@example.test", "code": "000000"} for n in range(2 * GATEWAY_BURST + 50)]
    replies, elapsed = await _flood(stack, "/api/auth/sessions", bodies)
    reached_auth = [r for r in replies if r[0] == 400]
    limited = [r for r in replies if r[0] == 429]
    assert len(reached_auth) + len(limited) == len(bodies), Counter(replies)
    assert all(code == "code_unknown" for _, code in reached_auth)
    assert all(code == "rate_limited" for _, code in limited)
    assert GATEWAY_BURST <= len(reached_auth) <= _allowed(elapsed), (len(reached_auth), elapsed)


# ---------------------------------------------------------------- identity
async def test_forged_identity_headers_without_a_token_get_401(stack, gateway):
    me, session = await login(gateway, stack.smtp_sink_url)
    forged = {"X-User-Id": session["user_id"], "X-Device-Id": session["device_id"]}
    anonymous = gateway.with_token(None)
    for method, path in [("GET", "/api/auth/account"), ("GET", "/api/auth/devices"), ("POST", "/api/auth/logout"),
                         ("GET", "/api/files"), ("GET", "/api/files/usage"), ("GET", "/api/trash"),
                         ("GET", "/api/billing/account"), ("POST", "/api/billing/start"),
                         ("POST", "/api/auth/account/deletion-codes")]:
        reply = await anonymous.call(method, path, headers=forged)
        assert reply.status == 401 and reply.error_code() == "unauthorized", (method, path, reply)
        reply = await gateway.with_token("forged-token").call(method, path, headers=forged)
        assert reply.status == 401, (method, path, reply)
    # the real device is unaffected and nothing was activated by the forged calls
    assert (await me.call("GET", "/api/billing/account")).body["plan"] is None
