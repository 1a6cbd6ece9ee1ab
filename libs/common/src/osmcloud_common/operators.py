"""The operators' credential for the admin API (docs/operators.md).

Operator tokens are configured as their SHA-256 digests (OPERATOR_TOKEN_SHA256, comma-separated
hex): the configuration never holds a token itself, and a token is only ever compared as its
digest, in constant time against every configured digest. Nothing has a default: with no
digest configured the admin API is off and its routes answer 404. A user's device token is
never an operator token (it is not among the digests), so it is refused with 403."""

import hashlib
import hmac
import re

from aiohttp import web

from .errors import Forbidden, NotFound, Unauthorized

DIGEST = re.compile(r"^[0-9a-f]{64}$")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_digests(setting: str) -> list[str]:
    return [d.strip().lower() for d in setting.split(",") if d.strip()]


def digest_problems(setting: str) -> list[str]:
    """Why OPERATOR_TOKEN_SHA256 cannot be used (empty list: it can, or it is empty: off)."""
    bad = [d for d in parse_digests(setting) if not DIGEST.match(d)]
    if bad:
        return [f"OPERATOR_TOKEN_SHA256 must list SHA-256 digests (64 hex characters, comma-separated); "
                f"{len(bad)} entr{'y is' if len(bad) == 1 else 'ies are'} not one (make one with "
                f"`printf %s \"$TOKEN\" | sha256sum`)"]
    return []


class OperatorTokens:
    def __init__(self, setting: str) -> None:
        self._digests = [bytes.fromhex(d) for d in parse_digests(setting) if DIGEST.match(d)]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def operator_of(self, request: web.Request) -> str:
        """The operator a request comes from ("operator:<first 12 hex digits of the digest>",
        for the audit log); raises when the admin API is off or the token is missing or wrong."""
        if not self._digests:
            raise NotFound("the admin API is not enabled on this server (set OPERATOR_TOKEN_SHA256)",
                           code="admin_api_disabled")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the admin API needs 'Authorization: Bearer <operator token>'")
        offered = hashlib.sha256(token.strip().encode()).digest()
        match = None
        for candidate in self._digests:  # every digest compared, in constant time
            if hmac.compare_digest(offered, candidate):
                match = candidate
        if match is None:
            raise Forbidden("this token is not an operator token", code="not_an_operator")
        return f"operator:{match.hex()[:12]}"
