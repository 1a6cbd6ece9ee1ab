"""The web app's session through the gateway, as a browser's requests carry it: the token in an
HttpOnly cookie, the CSRF header on calls that change data, the app served with a strict
Content-Security-Policy (docs/adr/0008-browser-sessions.md)."""

from __future__ import annotations

import aiohttp
import pytest

from osmcloud_localstack.client import count_mails, read_code

SESSION = "__Host-osmcloud_session"
CSRF = "__Host-osmcloud_csrf"


async def browser_login(stack, http: aiohttp.ClientSession,
                        email: str) -> tuple[dict, dict[str, str], aiohttp.ClientResponse]:
    before = await count_mails(http, stack.smtp_sink_url, email)
    async with http.post(stack.url("/api/auth/login-codes"), json={"email": email}) as r:
        assert r.status == 202
    code = await read_code(http, stack.smtp_sink_url, email, after=before)
    async with http.post(stack.url("/api/auth/browser-sessions"),
                         json={"email": email, "code": code, "browser": "Firefox on Linux"}) as r:
        assert r.status == 201, await r.text()
        body = await r.json()
        cookies = {name: morsel.value for name, morsel in r.cookies.items()}
        return body, cookies, r


def cookie_header(cookies: dict[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


async def test_browser_sign_in_sets_cookies_and_no_token_in_the_body(stack, http, unique_email) -> None:
    body, cookies, reply = await browser_login(stack, http, unique_email)
    assert set(body) == {"user_id", "device_id", "new_account"} and body["new_account"] is True
    raw = reply.headers.getall("Set-Cookie")
    session_line = next(line for line in raw if line.startswith(SESSION + "="))
    csrf_line = next(line for line in raw if line.startswith(CSRF + "="))
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/", "Max-Age=7776000"):
        assert attribute in session_line, (attribute, session_line)
    assert "HttpOnly" not in csrf_line and "Secure" in csrf_line and "SameSite=Strict" in csrf_line
    assert "Domain" not in session_line  # a __Host- cookie belongs to this host only
    # the device is named after the browser
    async with http.get(stack.url("/api/auth/devices"), headers=cookie_header(cookies)) as r:
        devices = (await r.json())["devices"]
    assert [(d["name"], d["platform"], d["this_device"]) for d in devices] == [("Firefox on Linux", "web", True)]


async def test_state_changing_calls_by_cookie_need_the_csrf_header(stack, http, unique_email) -> None:
    _, cookies, _ = await browser_login(stack, http, unique_email)
    only_session = cookie_header({SESSION: cookies[SESSION]})
    both = cookie_header(cookies)
    # reading needs the cookie only
    async with http.get(stack.url("/api/files/usage"), headers=only_session) as r:
        assert r.status == 200
    # changing data without the header, or with a wrong one, is refused before any service acts
    for headers in (both, {**both, "X-CSRF-Token": "0" * 64}, {**only_session, "X-CSRF-Token": ""}):
        for method, path in (("POST", "/api/billing/start"), ("PUT", "/api/files/FAVOURITES/x.gpx"),
                             ("DELETE", "/api/trash"), ("POST", "/api/auth/logout")):
            async with http.request(method, stack.url(path), headers=headers, data=b"<gpx/>") as r:
                assert r.status == 403, (method, path, r.status, await r.text())
                error = (await r.json())["error"]
                assert error["code"] == "csrf_check_failed" and "X-CSRF-Token" in error["message"]
    # the same calls with the CSRF cookie's value in the header go through
    ok = {**both, "X-CSRF-Token": cookies[CSRF]}
    async with http.post(stack.url("/api/billing/start"), headers=ok) as r:
        assert r.status == 201, await r.text()
    # a Bearer token needs no CSRF header (apps are not browsers), and wins over a cookie
    async with http.get(stack.url("/api/files"), headers={**both, "Authorization": "Bearer wrong"}) as r:
        assert r.status == 401


async def test_sign_out_by_cookie_expires_the_cookies_and_the_device(stack, http, unique_email) -> None:
    _, cookies, _ = await browser_login(stack, http, unique_email)
    headers = {**cookie_header(cookies), "X-CSRF-Token": cookies[CSRF]}
    async with http.post(stack.url("/api/auth/logout"), headers=headers) as r:
        assert r.status == 200
        cleared = {name: morsel for name, morsel in r.cookies.items()}
    assert cleared[SESSION].value == "" and str(cleared[SESSION]["max-age"]) == "0"
    assert cleared[CSRF].value == "" and str(cleared[CSRF]["max-age"]) == "0"
    async with http.get(stack.url("/api/auth/account"), headers=cookie_header(cookies)) as r:
        assert r.status == 401  # the next request already fails


async def test_cookie_that_is_no_session_is_unauthorized(stack, http) -> None:
    for cookie in (f"{SESSION}=not-a-token", f"{SESSION}=", "other=1", "garbage;;;="):
        async with http.get(stack.url("/api/files"), headers={"Cookie": cookie}) as r:
            assert r.status == 401, cookie
            assert (await r.json())["error"]["code"] == "unauthorized"


CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: https:; "
       "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")


@pytest.mark.parametrize("path", ["/", "/files", "/files?type=GPX", "/versions/GPX/tracks/2024/a.gpx", "/trash",
                                  "/storage", "/backup", "/devices", "/plan", "/account", "/map", "/sign-in"])
async def test_every_screen_url_serves_the_app_with_a_strict_policy(stack, http, path: str) -> None:
    async with http.get(stack.url(path)) as r:
        assert r.status == 200, path
        assert r.content_type == "text/html"
        assert '<div id="root">' in await r.text()
        assert r.headers["Content-Security-Policy"] == CSP
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert r.headers["Cache-Control"] == "no-cache"


async def test_assets_are_served_with_their_types_and_unknown_paths_stay_404(stack, http) -> None:
    async with http.get(stack.url("/")) as r:
        html = await r.text()
    script = html.split('<script type="module" crossorigin src="')[1].split('"')[0]
    style = html.split('<link rel="stylesheet" crossorigin href="')[1].split('"')[0]
    async with http.get(stack.url(script)) as r:
        assert r.status == 200 and r.content_type == "text/javascript"
        assert "immutable" in r.headers["Cache-Control"] and r.headers["Content-Security-Policy"] == CSP
    async with http.get(stack.url(style)) as r:
        assert r.status == 200 and r.content_type == "text/css"
    async with http.get(stack.url("/favicon.svg")) as r:
        assert r.status == 200 and r.content_type == "image/svg+xml"
    for path in ("/assets/nope.js", "/nope", "/filesx", "/internal/verify", "/assets/../../etc/passwd"):
        async with http.get(stack.url(path)) as r:
            assert r.status in (400, 404), path
            if r.status == 404:
                assert (await r.json())["error"]["code"] == "not_found", path
    # nothing in the page runs inline: the policy would block it
    assert "<script>" not in html and " style=" not in html
