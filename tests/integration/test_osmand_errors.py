"""OsmAnd's error shape on every /userdata/ answer (../shared/OSMAND-PROTOCOL.md, "Transport"):
HTTP 400 and {"error": {"errorCode": N, "message": ...}} — for nginx's own refusals (rate limits,
bodies too large, unknown endpoints, services down) as for the services' — never HTML or our
native {"error": {"code": ...}}. Limits and outages answer 6, the apps' "service is not
available, please try later", with a message that says when to retry."""

import asyncio
import gzip
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from osmcloud_common.osmand import TRY_LATER
from osmcloud_localstack import paths
from osmcloud_localstack.client import GatewayClient, Reply
from osmcloud_localstack.gateway import write_gateway_config

REPO = Path(__file__).resolve().parents[2]
FLOOD_ADDRESS = "127.0.0.24"  # its own rate-limit bucket: the rest of the suite is not slowed
ENDPOINTS = [("POST", "user-register"), ("POST", "send-code"), ("POST", "device-register"),
             ("POST", "auth/confirm-code"), ("POST", "delete-account"), ("GET", "user-validate-sub"),
             ("POST", "user-update-orderid"), ("POST", "empty-trash"), ("GET", "list-files"),
             ("POST", "delete-file"), ("POST", "delete-file-version"), ("GET", "check-file-on-server"),
             ("POST", "upload-file"), ("GET", "download-file")]


def osmand_error(reply: Reply) -> tuple[int, str]:
    """(errorCode, message) of an answer that must be in OsmAnd's error shape."""
    assert reply.status == 400, reply
    assert reply.headers.get("Content-Type", "").startswith("application/json"), reply
    error = reply.body["error"]
    assert set(error) == {"errorCode", "message"} and isinstance(error["errorCode"], int), reply.body
    return error["errorCode"], error["message"]


async def test_rate_limited_code_requests_answer_try_later(stack):
    connector = aiohttp.TCPConnector(local_addr=(FLOOD_ADDRESS, 0), limit=200)
    async with aiohttp.ClientSession(connector=connector) as session:
        gw = GatewayClient(session, stack.gateway_url)
        # malformed e-mails: auth answers 101 without mailing anything; the flood passes the burst
        replies = await asyncio.gather(*(gw.call("POST", "/userdata/user-register", data={
            "email": "not-an-address", "login": "false", "lang": "en", "deviceid": "x"}) for _ in range(160)))
    codes = [osmand_error(r)[0] for r in replies]
    limited = [r for r in replies if osmand_error(r)[0] == TRY_LATER]
    assert limited and set(codes) == {101, TRY_LATER}, codes
    assert all(r.headers.get("Retry-After") == "1" and "retry in 1 s" in r.body["error"]["message"]
               for r in limited)


async def test_too_large_and_unknown_answer_in_osmands_shape(gateway):
    big = await gateway.call("POST", "/userdata/empty-trash", params={"deviceid": "1", "accessToken": "x"},
                             data=b"[" + b" " * (2 * 1024 * 1024) + b"]", headers={"Content-Type": "application/json"})
    code, message = osmand_error(big)
    assert code == 400 and "too large" in message
    for path in ("/userdata/no-such-endpoint", "/userdata/", "/userdata/list-files/extra"):
        assert osmand_error(await gateway.call("GET", path))[0] == 400, path
    # a method the app never sends: OsmAnd's body with HTTP's own 405 and Allow (docs/api.md),
    # from the service and from nginx alike
    for method in ("DELETE", "TRACE"):
        wrong_method = await gateway.call(method, "/userdata/list-files")
        assert wrong_method.status == 405 and "GET" in wrong_method.headers.get("Allow", ""), wrong_method
        assert wrong_method.body["error"]["errorCode"] == 405, wrong_method


async def test_a_repeated_sign_up_is_111_and_an_early_resend_says_when(gateway, unique_email):
    form = {"email": unique_email, "login": "false", "lang": "en", "deviceid": str(uuid.uuid4())}
    first = await gateway.call("POST", "/userdata/user-register", data=form)
    assert first.status == 200 and first.body == {"status": "ok"}, first
    # the reference keeps the account from the first user-register on: a second sign-up is 111
    assert osmand_error(await gateway.call("POST", "/userdata/user-register", data=form))[0] == 111
    # the app then logs in; a new code inside the resend wait answers when to ask again
    code, message = osmand_error(await gateway.call("POST", "/userdata/user-register",
                                                    data={**form, "login": "true"}))
    assert code == TRY_LATER, message
    wait = int(re.search(r"retry in (\d+) s", message).group(1))
    assert 1 <= wait <= 30, message


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gateway_to_nowhere(stack):
    """A second nginx from the very template the stack runs, whose upstreams are all down."""
    state = Path(tempfile.mkdtemp(prefix="osmcloud-nowhere-"))
    port, dead = _free_port(), f"127.0.0.1:{_free_port()}"
    conf = write_gateway_config(repo=REPO, prefix=state / "nginx", logs=state / "logs",
                                listen=f"127.0.0.1:{port}", gateway_secret="not-used",
                                upstreams={s: dead for s in ("auth", "files", "trash", "billing", "s3")})
    argv = [paths.nginx_binary(), "-c", str(conf), "-p", f"{state}/nginx/", "-e", str(state / "logs" / "error.log")]
    nginx = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):  # until it listens (a start, not a client's call)
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        nginx.terminate()
        nginx.wait(timeout=30)
        shutil.rmtree(state, ignore_errors=True)


async def test_services_down_answer_try_later_on_every_endpoint(gateway_to_nowhere):
    async with aiohttp.ClientSession() as session:
        gw = GatewayClient(session, gateway_to_nowhere)
        for method, endpoint in ENDPOINTS:
            data = gzip.compress(b"x") if endpoint == "upload-file" else {"email": "a@b.test"}
            reply = await gw.call(method, f"/userdata/{endpoint}", data=data if method == "POST" else None,
                                  params={"deviceid": "1", "accessToken": "t", "name": "x", "type": "GPX"})
            code, message = osmand_error(reply)
            assert code == TRY_LATER and "retry in 5 s" in message, (endpoint, reply)
            assert reply.headers.get("Retry-After") == "5", endpoint
