"""Schemathesis hooks for tests/integration/test_schemathesis.py (loaded by the CLI through
SCHEMATHESIS_HOOKS): the native API's bearer token.

The run starts with the token the test's fixture got through the real login-code flow
(OSMCLOUD_ST_TOKEN). Some operations end the session that token belongs to — log out, log a
device out, delete the account — and schemathesis calls them with valid data, so after any
of them answers 2xx the next case signs a fresh user in, the same way: a code requested at
/api/auth/login-codes, read from the SMTP sink (OSMCLOUD_ST_SMTP_SINK), exchanged at
/api/auth/sessions. The /userdata/ credentials are pinned in schemathesis.toml instead: they
belong to another account, which no operation can end without a code mailed to it."""

import os
import random
import re
import time
import uuid

import requests
import schemathesis

GATEWAY = os.environ["OSMCLOUD_ST_GATEWAY"].rstrip("/")
SINK = os.environ["OSMCLOUD_ST_SMTP_SINK"].rstrip("/")
ENDS_SESSION = re.compile(r"^(POST /api/auth/logout|DELETE /api/auth/devices/.+|POST /api/auth/account/delete)$")
CODE = re.compile(r"\b(\d{4,18})\b")

_generation = {"n": 0}
_first = {"token": os.environ["OSMCLOUD_ST_TOKEN"]}


def sign_in() -> str:
    """A new account through the login-code flow; the gateway's code-request limit (429) is waited out."""
    email = f"st-{uuid.uuid4().hex[:12]}@example.test"
    for _ in range(30):
        reply = requests.post(f"{GATEWAY}/api/auth/login-codes", json={"email": email}, timeout=10)
        if reply.status_code != 429:
            break
        time.sleep(float(reply.headers.get("Retry-After", "1")))
    assert reply.status_code == 202, reply.text
    for _ in range(100):
        mails = requests.get(f"{SINK}/messages", params={"to": email}, timeout=10).json()
        if mails:
            break
        time.sleep(0.1)
    code = CODE.search(mails[-1]["body"]).group(1)
    for _ in range(30):
        reply = requests.post(f"{GATEWAY}/api/auth/sessions", json={"email": email, "code": code}, timeout=10)
        if reply.status_code != 429:
            break
        time.sleep(float(reply.headers.get("Retry-After", "1")))
    assert reply.status_code == 201, reply.text
    return reply.json()["token"]


@schemathesis.auth(refresh_interval=10**9, retry_on=[], cache_by_key=lambda case, ctx: str(_generation["n"]))
class DeviceToken:
    def get(self, case, ctx):
        if _generation["n"] == 0:
            return _first["token"]
        return sign_in()

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.hook
def after_call(ctx, case, response):
    if 200 <= response.status_code < 300 and ENDS_SESSION.match(f"{case.method.upper()} {case.formatted_path}"):
        _generation["n"] += 1


@schemathesis.hook
def before_call(ctx, case, kwargs):
    """Each case from its own client address (the test stack trusts 127.0.0.1 as a proxy, so nginx
    takes the address from X-Forwarded-For): the gateway's per-address limits on the code
    endpoints would otherwise answer most of this run's calls with 429 (on /userdata/ in
    OsmAnd's shape, a 400), leaving the endpoints' own logic untested. The limits themselves
    are tested in test_attacks.py and test_osmand_errors.py."""
    address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    case.headers = {**(case.headers or {}), "X-Forwarded-For": address}
    if isinstance(kwargs.get("headers"), dict):
        kwargs["headers"]["X-Forwarded-For"] = address
