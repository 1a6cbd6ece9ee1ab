"""The web app's cookie session: which credential a gateway sub-request carries, and the CSRF rule."""

import pytest
from aiohttp import web
from multidict import CIMultiDict

from osmcloud_auth.browser_sessions import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    clear_session_cookies,
    cookie_value,
    credential,
    csrf_token,
    set_session_cookies,
)
from osmcloud_common.errors import Forbidden, Unauthorized

TOKEN = "tok-" + "a" * 40


def headers(**kw: str) -> CIMultiDict:
    return CIMultiDict({k.replace("_", "-"): v for k, v in kw.items()})


def test_bearer_token_wins_over_the_cookie() -> None:
    h = headers(Authorization="Bearer other", Cookie=f"{SESSION_COOKIE}={TOKEN}")
    assert credential(h, "POST") == "other"  # no CSRF check for a Bearer token


def test_a_malformed_authorization_header_is_refused_even_with_a_cookie() -> None:
    with pytest.raises(Unauthorized):
        credential(headers(Authorization="Basic xyz", Cookie=f"{SESSION_COOKIE}={TOKEN}"), "GET")


def test_cookie_is_enough_for_reading() -> None:
    for method in ("GET", "HEAD", "OPTIONS", "get"):
        assert credential(headers(Cookie=f"a=b; {SESSION_COOKIE}={TOKEN}; c=d"), method) == TOKEN


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_state_changing_calls_by_cookie_need_the_csrf_header(method: str) -> None:
    cookie = f"{SESSION_COOKIE}={TOKEN}; {CSRF_COOKIE}={csrf_token(TOKEN)}"
    with pytest.raises(Forbidden) as refused:
        credential(headers(Cookie=cookie), method)
    assert refused.value.code == "csrf_check_failed" and "X-CSRF-Token" in refused.value.message
    with pytest.raises(Forbidden):  # a value for another token
        credential(headers(Cookie=cookie, X_CSRF_Token=csrf_token("someone-else")), method)
    assert credential(headers(Cookie=cookie, X_CSRF_Token=csrf_token(TOKEN)), method) == TOKEN


def test_no_credential_at_all_is_unauthorized() -> None:
    for h in (headers(), headers(Cookie="other=1"), headers(Cookie=f"{SESSION_COOKIE}="), headers(Cookie="\x00;;=")):
        with pytest.raises(Unauthorized):
            credential(h, "GET")


def test_csrf_value_is_stable_per_token_and_reveals_nothing_of_it() -> None:
    assert csrf_token(TOKEN) == csrf_token(TOKEN) != csrf_token(TOKEN + "x")
    assert TOKEN not in csrf_token(TOKEN) and len(csrf_token(TOKEN)) == 64


def test_cookies_set_and_cleared_with_their_attributes() -> None:
    response = web.Response()
    set_session_cookies(response, TOKEN, 3600)
    session, csrf = response.cookies[SESSION_COOKIE], response.cookies[CSRF_COOKIE]
    assert session.value == TOKEN and session["httponly"] and session["secure"] and session["samesite"] == "Strict"
    assert session["path"] == "/" and str(session["max-age"]) == "3600" and not session["domain"]
    assert csrf.value == csrf_token(TOKEN) and not csrf["httponly"] and csrf["secure"] and csrf["samesite"] == "Strict"
    cleared = web.Response()
    clear_session_cookies(cleared)
    assert str(cleared.cookies[SESSION_COOKIE]["max-age"]) == "0" and cleared.cookies[SESSION_COOKIE].value == ""
    assert cookie_value(f"{SESSION_COOKIE}=abc", SESSION_COOKIE) == "abc"
