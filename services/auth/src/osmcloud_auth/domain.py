"""Auth's rules, free of I/O: e-mail checks, codes, token hashing, code verdicts, request limits."""

import hashlib
import hmac
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from osmcloud_common.errors import BadRequest

# no blank (Unicode white space) and no ASCII control character: one could not be mailed
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")


def normalize_email(raw: str) -> str:
    email = (raw or "").strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise BadRequest(f"'{raw}' is not a valid e-mail address", code="invalid_email")
    return email


def new_code(digits: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(digits))


def new_token() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """Codes and tokens are stored only as SHA-256 digests."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Purpose(StrEnum):
    LOGIN = "login"
    DELETE_ACCOUNT = "delete-account"


class CodeVerdict(StrEnum):
    OK = "ok"
    WRONG = "wrong"
    EXPIRED = "expired"
    USED = "used"
    EXHAUSTED = "exhausted"  # too many wrong tries: the code is dead even if right


@dataclass(frozen=True)
class IssuedCode:
    code_digest: str
    expires_at: datetime
    attempts: int
    used: bool


def judge_code(issued: IssuedCode, offered: str, now: datetime, max_attempts: int) -> CodeVerdict:
    if issued.used:
        return CodeVerdict.USED
    if issued.attempts >= max_attempts:
        return CodeVerdict.EXHAUSTED
    if now >= issued.expires_at:
        return CodeVerdict.EXPIRED
    if not hmac.compare_digest(issued.code_digest, digest(offered or "")):
        return CodeVerdict.WRONG
    return CodeVerdict.OK


def next_resend_at(sent_at: datetime, resend_seconds: int) -> datetime:
    return sent_at + timedelta(seconds=resend_seconds)


# ---------------------------------------------------------------- request limits
def seconds_until(moment: datetime, now: datetime) -> int:
    """Whole seconds a client should wait, never less than 1."""
    return max(1, math.ceil((moment - now).total_seconds()))
