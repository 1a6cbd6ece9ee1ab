"""Sessions of the web app: the device token in an HttpOnly cookie, never readable by scripts.

A browser signs in like any device (e-mail, mailed code) at `POST /api/auth/browser-sessions`;
the answer carries no token but sets two cookies (docs/adr/0008-browser-sessions.md):

  __Host-osmcloud_session  the device token; HttpOnly, Secure, SameSite=Strict, Path=/
  __Host-osmcloud_csrf     a value derived from the token (HMAC-SHA256 keyed by it), readable by
                           the app's scripts, which send it back in `X-CSRF-Token`

The gateway's authentication sub-request (`/internal/verify`) takes a Bearer token first and
the session cookie only when there is none. A call authenticated by the cookie whose method
changes state (anything but GET, HEAD, OPTIONS) must carry `X-CSRF-Token` equal to the value
derived from that cookie's token, else 403: another site can make a browser send the cookie
(SameSite=Strict already stops that in current browsers) but can neither read the CSRF cookie
nor compute the value. No state is kept for it: the value is a function of the token.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie

from aiohttp import web

from osmcloud_common.errors import Forbidden, Unauthorized

SESSION_COOKIE = "__Host-osmcloud_session"
CSRF_COOKIE = "__Host-osmcloud_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(token: str) -> str:
    """The CSRF value of a session: HMAC-SHA256 keyed by the device token (it tells nothing
    about the token, and only who holds the token can compute it)."""
    return hmac.new(token.encode(), b"osmcloud-csrf", hashlib.sha256).hexdigest()


def cookie_value(header: str, name: str) -> str | None:
    """The value of cookie ``name`` in a Cookie header; None when absent or unparsable."""
    if not header:
        return None
    jar = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None and morsel.value else None


def credential(headers: Mapping[str, str], method: str) -> str:
    """The device token a gateway sub-request carries, after the CSRF check for a cookie.

    ``headers``: the sub-request's headers (nginx passes the client's, plus X-Original-Method);
    ``method``: the client's method. Raises Unauthorized when there is no token at all and
    Forbidden when a state-changing call by cookie lacks the right X-CSRF-Token."""
    authorization = headers.get("Authorization", "")
    if authorization:
        scheme, _, bearer = authorization.partition(" ")
        if scheme.lower() != "bearer" or not bearer.strip():
            raise Unauthorized("authentication required: send 'Authorization: Bearer <device token>'")
        return bearer.strip()
    token = cookie_value(headers.get("Cookie", ""), SESSION_COOKIE)
    if not token:
        raise Unauthorized("authentication required: send 'Authorization: Bearer <device token>' "
                           "or sign in in the web app")
    if method.upper() not in SAFE_METHODS:
        sent = headers.get(CSRF_HEADER, "")
        if not sent or not hmac.compare_digest(sent.encode(), csrf_token(token).encode()):
            raise Forbidden(f"this call changes data and was sent with the web app's session cookie but without "
                            f"its {CSRF_HEADER} header; reload the web app and try again", code="csrf_check_failed")
    return token


def set_session_cookies(response: web.StreamResponse, token: str, max_age_seconds: int) -> None:
    """The session cookie (HttpOnly) and the CSRF cookie (readable by the app) of a new session."""
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age_seconds, path="/", secure=True, httponly=True,
                        samesite="Strict")
    response.set_cookie(CSRF_COOKIE, csrf_token(token), max_age=max_age_seconds, path="/", secure=True,
                        httponly=False, samesite="Strict")


def clear_session_cookies(response: web.StreamResponse) -> None:
    """Both cookies expired (sign-out, account deleted); harmless for a client without them."""
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.set_cookie(name, "", max_age=0, path="/", secure=True, httponly=name == SESSION_COOKIE,
                            samesite="Strict")
