"""The real nginx with the shared template, in front of fake upstreams: authentication by
sub-request, the headers upstreams receive, public routes, rate limits, streaming, hidden paths."""

import asyncio
import os
import re
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from osmcloud_localstack.gateway import write_gateway_config
from osmcloud_localstack.paths import repo_root
from osmcloud_localstack.procs import ProcessManager
from osmcloud_localstack.readiness import http_ok

NGINX = "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else shutil.which("nginx")
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx not installed (run infra/bootstrap.sh)")

SECRET = "gw-secret-for-tests"
GOOD_TOKEN = "good-token"
VERIFIED = {"X-User-Id": "user-1", "X-Device-Id": "device-1", "X-User-Num": "11", "X-Device-Num": "12"}
FORGED = {name: "forged" for name in VERIFIED}
TEMPLATE = Path(__file__).resolve().parents[3] / "gateway" / "default.conf.template"

# every route the gateway proxies to a service: (method, path, service, authenticated by the gateway)
PROXIED_ROUTES = [
    ("POST", "/api/auth/login-codes", "auth", False),
    ("POST", "/api/auth/sessions", "auth", False),
    ("POST", "/api/auth/account/deletion-codes", "auth", True),
    ("POST", "/api/auth/account/delete", "auth", True),
    ("POST", "/api/billing/notifications/google", "billing", False),
    ("GET", "/api/auth/account", "auth", True),
    ("GET", "/api/files", "files", True),
    ("GET", "/api/trash", "trash", True),
    ("GET", "/api/billing/account", "billing", True),
    *[("POST", f"/userdata/{e}", "auth", False) for e in ("user-register", "send-code", "device-register",
                                                           "auth/confirm-code", "delete-account",
                                                           "user-update-orderid")],
    ("GET", "/userdata/user-validate-sub", "auth", False),
    ("POST", "/userdata/empty-trash", "trash", False),
    *[("POST", f"/userdata/{e}", "files", False) for e in ("delete-file", "delete-file-version", "upload-file")],
    *[("GET", f"/userdata/{e}", "files", False) for e in ("list-files", "check-file-on-server", "download-file")],
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Seen:
    requests: list[dict] = field(default_factory=list)
    verify_calls: list[dict] = field(default_factory=list)


def _fake_service(name: str, seen: Seen) -> web.Application:
    async def verify(request: web.Request) -> web.Response:
        seen.verify_calls.append(request.headers.copy())
        if request.headers.get("X-Gateway-Secret") != SECRET:
            return web.Response(status=500)
        if request.headers.get("Authorization") == f"Bearer {GOOD_TOKEN}":
            return web.Response(status=200, headers=VERIFIED)
        return web.json_response({"error": {"code": "unauthorized"}}, status=401)

    async def echo(request: web.Request) -> web.Response:
        size = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
        seen.requests.append({"service": name, "path": request.path_qs, "headers": request.headers.copy(),
                              "size": size})
        return web.json_response({"service": name, "size": size})

    async def blob_redirect(request: web.Request) -> web.Response:
        """files' answer to a download when the gateway offers to stream blobs itself."""
        seen.requests.append({"service": name, "path": request.path_qs, "headers": request.headers.copy(), "size": 0})
        wanted, key = request.match_info["wanted"], request.match_info["key"]
        return web.Response(headers={"X-Accel-Redirect": f"/_blob/v123/sha256:abc/{wanted}/bucket/users/u1/{key}"
                                                         f"?X-Amz-Signature=sig&X-Amz-Expires=300",
                                     "X-Leaked": "files-only"})

    async def s3_object(request: web.Request) -> web.Response:
        seen.requests.append({"service": name, "path": request.path_qs, "headers": request.headers.copy(), "size": 0})
        if request.path.endswith("/gone"):
            return web.Response(status=404, text="<Error><Code>NoSuchKey</Code></Error>",
                                content_type="application/xml")
        body, headers = b"0123456789", {"ETag": '"md5-of-s3"', "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT",
                                         "x-amz-request-id": "s3-request", "Content-Type": "application/octet-stream"}
        if request.headers.get("Range") == "bytes=2-5":
            return web.Response(status=206, body=body[2:6], headers={**headers, "Content-Range": "bytes 2-5/10"})
        return web.Response(body=body, headers=headers)

    app = web.Application(client_max_size=1024**3)
    if name == "auth":
        app.router.add_get("/internal/verify", verify)
    if name == "files":
        app.router.add_get("/api/files/REDIRECT/{wanted}/{key}", blob_redirect)
    if name == "s3":
        app.router.add_get("/bucket/{key:.*}", s3_object)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


@dataclass
class Gateway:
    url: str
    seen: Seen
    s3: str = ""


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    tmp = tmp_path_factory.mktemp("gw")
    seen = Seen()
    runners, upstreams = [], {}
    for name in ("auth", "files", "trash", "billing", "s3"):
        runner = web.AppRunner(_fake_service(name, seen), access_log=None)
        await runner.setup()
        port = _free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        upstreams[name] = f"127.0.0.1:{port}"
    gw_port = _free_port()
    conf = write_gateway_config(
        repo=repo_root(), prefix=tmp / "nginx", logs=tmp / "logs", listen=f"127.0.0.1:{gw_port}",
        upstreams=upstreams, gateway_secret=SECRET,
        trusted_proxies=("127.0.0.1/32",),  # so a test can act as another client (X-Forwarded-For)
    )
    pm = ProcessManager(tmp / "run", tmp / "logs")
    pm.start("gateway", [NGINX, "-c", str(conf), "-p", f"{tmp / 'nginx'}/", "-e", str(tmp / "logs" / "e.log")],
             match=str(conf))
    url = f"http://127.0.0.1:{gw_port}"
    try:
        for _ in range(100):
            if await asyncio.to_thread(http_ok, f"{url}/healthz") is None:
                break
            await asyncio.sleep(0.05)
        yield Gateway(url, seen, upstreams["s3"])
    finally:
        pm.stop("gateway")
        for runner in runners:
            await runner.cleanup()


async def test_healthz(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{gateway.url}/healthz") as r:
        assert r.status == 200


@pytest.mark.parametrize("path", ["/api/files/FAVOURITES/x.gpx", "/api/files", "/api/trash", "/api/billing/account",
                                  "/api/auth/account"])
async def test_without_a_valid_token_every_api_is_401_json(gateway: Gateway, path: str) -> None:
    before = len(gateway.seen.requests)
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-User-Id": "user-1"}):
            async with http.get(gateway.url + path, headers=headers) as r:
                assert r.status == 401
                assert r.content_type == "application/json"
                assert (await r.json())["error"]["code"] == "unauthorized"
    assert len(gateway.seen.requests) == before  # nothing reached the upstream


async def test_authenticated_request_carries_verified_identity(gateway: Gateway) -> None:
    headers = {"Authorization": f"Bearer {GOOD_TOKEN}", "X-User-Id": "forged", "X-Device-Id": "forged",
               "X-Gateway-Secret": "forged"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/api/files?x=1", headers=headers) as r:
            assert r.status == 200
            assert (await r.json())["service"] == "files"
            request_id = r.headers["X-Request-Id"]
    got = gateway.seen.requests[-1]
    assert got["path"] == "/api/files?x=1"
    h = got["headers"]
    assert h["X-User-Id"] == "user-1" and h["X-Device-Id"] == "device-1"
    assert h["X-Gateway-Secret"] == SECRET
    assert h["X-Request-Id"] == request_id
    verify = gateway.seen.verify_calls[-1]
    assert verify["X-Original-URI"] == "/api/files?x=1" and verify["X-Original-Method"] == "GET"
    assert verify["X-Request-Id"] == request_id


@pytest.mark.parametrize("service", ["auth", "trash", "billing"])
async def test_each_service_is_routed(gateway: Gateway, service: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/api/{service}/x", headers={"Authorization": f"Bearer {GOOD_TOKEN}"}) as r:
            assert r.status == 200
            assert (await r.json())["service"] == service


async def test_public_auth_endpoints_need_no_token_and_get_no_identity(gateway: Gateway) -> None:
    verify_before = len(gateway.seen.verify_calls)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{gateway.url}/api/auth/login-codes", json={"email": "a@b.c"},
                             headers={"X-User-Id": "forged"}) as r:
            assert r.status == 200
    got = gateway.seen.requests[-1]
    assert got["service"] == "auth" and got["path"] == "/api/auth/login-codes"
    assert "X-User-Id" not in got["headers"] and "X-Device-Id" not in got["headers"]
    assert got["headers"]["X-Gateway-Secret"] == SECRET
    assert len(gateway.seen.verify_calls) == verify_before


@pytest.mark.parametrize(("method", "path", "service", "authenticated"), PROXIED_ROUTES)
async def test_every_route_passes_only_verified_identity(gateway: Gateway, method: str, path: str, service: str,
                                                         authenticated: bool) -> None:
    """A client's own identity headers never reach a service: replaced by what auth verified
    where the gateway authenticates, dropped everywhere else (X-User-Num / X-Device-Num too)."""
    headers = {**FORGED, "X-Gateway-Secret": "forged", "X-Blob-Redirect": "on"}
    if authenticated:
        headers["Authorization"] = f"Bearer {GOOD_TOKEN}"
    async with aiohttp.ClientSession() as http, http.request(method, gateway.url + path, headers=headers) as r:
        assert r.status == 200, (method, path, r.status)
        assert (await r.json())["service"] == service
    got = gateway.seen.requests[-1]["headers"]
    for name, verified in VERIFIED.items():
        assert got.get(name) == (verified if authenticated else None), (path, name, got.get(name))
    assert got["X-Gateway-Secret"] == SECRET and got["X-Request-Id"] and got["X-Real-IP"] == "127.0.0.1"
    assert got.get("X-Blob-Redirect") == ("on" if path.startswith("/api/files") else None), path


def test_no_location_that_proxies_to_a_service_sets_headers_of_its_own() -> None:
    """nginx inherits the server's proxy_set_header lines (identity included) only into
    locations that set none: one proxy_set_header in such a location would pass a client's
    forged identity headers on."""
    blocks = re.split(r"(?m)^    location ", TEMPLATE.read_text())[1:]
    proxied = [b for b in blocks if re.search(r"proxy_pass http://osmcloud_(auth|files|trash|billing)\b", b)]
    assert len(proxied) >= 15
    for block in proxied:
        head = block.splitlines()[0]
        if head.startswith("= /_auth "):  # the verify sub-request: its own headers, no identity
            continue
        assert "proxy_set_header" not in block, f"location {head} sets proxy_set_header: move it to the server block"


async def test_public_endpoints_are_rate_limited(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as http:
        statuses = []
        # one client of its own (behind the trusted proxy), so the flood leaves the other tests'
        # client its burst, whatever order they run in
        flooder = {"X-Forwarded-For": "10.99.0.1"}
        for _ in range(130):  # past the burst of 100 (plus 5 r/s refill) the template allows
            async with http.post(f"{gateway.url}/api/auth/sessions", json={}, headers=flooder) as r:
                statuses.append(r.status)
                if r.status == 429:
                    assert (await r.json())["error"]["code"] == "rate_limited"
    assert 429 in statuses and statuses[0] == 200


async def test_large_upload_streams_to_files(gateway: Gateway) -> None:
    size = 24 * 1024 * 1024  # far above the 1m default body limit

    async def body() -> AsyncIterator[bytes]:
        chunk = b"x" * (1024 * 1024)
        for _ in range(size // len(chunk)):
            yield chunk

    async with aiohttp.ClientSession() as http:
        async with http.put(
            f"{gateway.url}/api/files/TRACKS/big.gpx", data=body(), headers={"Authorization": f"Bearer {GOOD_TOKEN}"}
        ) as r:
            assert r.status == 200
            assert (await r.json())["size"] == size


async def test_small_json_apis_refuse_large_bodies(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{gateway.url}/api/billing/x", data=b"x" * (2 * 1024 * 1024),
            headers={"Authorization": f"Bearer {GOOD_TOKEN}"}
        ) as r:
            assert r.status == 413
            assert (await r.json())["error"]["code"] == "payload_too_large"


# "/" and the screens' URLs serve the web app (tests/integration/test_browser_sessions.py)
@pytest.mark.parametrize("path", ["/internal/verify", "/nope", "/filesx", "/api", "/api/filesystem", "/_auth"])
async def test_other_paths_are_404(gateway: Gateway, path: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(gateway.url + path) as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "not_found"


async def test_a_download_files_redirects_is_streamed_from_s3_with_our_headers(gateway: Gateway) -> None:
    headers = {"Authorization": f"Bearer {GOOD_TOKEN}", "Range": "bytes=0-", "Cookie": "c=1", "If-None-Match": '"x"'}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/api/files/REDIRECT/bytes=2-5/v123", headers=headers) as r:
            assert r.status == 206 and await r.read() == b"2345"
            assert r.headers["ETag"] == '"v123"' and r.headers["X-Version-Id"] == "v123"
            assert r.headers["X-Checksum"] == "sha256:abc" and r.headers["Accept-Ranges"] == "bytes"
            assert r.headers["Content-Range"] == "bytes 2-5/10" and "X-Request-Id" in r.headers
            assert "x-amz-request-id" not in r.headers and "Last-Modified" not in r.headers
            assert "X-Leaked" not in r.headers
    asked_files, asked_s3 = gateway.seen.requests[-2], gateway.seen.requests[-1]
    assert asked_files["service"] == "files" and asked_files["headers"]["X-Blob-Redirect"] == "on"
    assert asked_s3["service"] == "s3"
    assert asked_s3["path"] == "/bucket/users/u1/v123?X-Amz-Signature=sig&X-Amz-Expires=300"
    sent = asked_s3["headers"]
    assert sent["Host"] == gateway.s3 and sent["Range"] == "bytes=2-5"  # the range files judged, not the client's
    for private in ("Authorization", "Cookie", "If-None-Match", "X-Gateway-Secret", "X-User-Id"):
        assert private not in sent


async def test_a_whole_blob_is_asked_without_a_range(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/api/files/REDIRECT/all/v123",
                            headers={"Authorization": f"Bearer {GOOD_TOKEN}"}) as r:
            assert r.status == 200 and await r.read() == b"0123456789"
            assert r.headers["ETag"] == '"v123"'
    assert "Range" not in gateway.seen.requests[-1]["headers"]


async def test_blob_location_is_internal_and_s3_errors_become_ours(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as http:
        before = len(gateway.seen.requests)
        async with http.get(f"{gateway.url}/_blob/v123/none/all/bucket/users/u1/v123") as r:
            assert r.status == 404
        assert len(gateway.seen.requests) == before  # never proxied from outside
        async with http.get(f"{gateway.url}/api/files/REDIRECT/all/gone",
                            headers={"Authorization": f"Bearer {GOOD_TOKEN}"}) as r:
            assert r.status == 404 and r.content_type == "application/json"
            assert (await r.json())["error"]["code"] == "file_not_found"
