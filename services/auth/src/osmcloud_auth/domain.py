"""Auth's rules, free of I/O: e-mail checks, codes, token hashing, code verdicts, request limits."""

import hashlib
import hmac
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from .errors import InvalidEmail

# no blank (Unicode white space) and no ASCII control character: one could not be mailed
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")


def normalize_email(raw: str) -> str:
    email = (raw or "").strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise InvalidEmail(f"'{raw}' is not a valid e-mail address")
    return email


def new_code(digits: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(digits))


def new_token() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """Codes and tokens are stored only as SHA-256 digests."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Purpose(StrEnum):
    """What a code was mailed for; it unlocks that and nothing else."""
    LOGIN = "login"  # POST /api/auth/sessions
    OSMAND_LOGIN = "osmand-login"  # /userdata/device-register
    DELETE_ACCOUNT = "delete-account"  # POST /api/auth/account/delete
    OSMAND_DELETE_ACCOUNT = "osmand-delete-account"  # /userdata/auth/confirm-code, delete-account


class CodeVerdict(StrEnum):
    """Why an offered code matched none of the e-mail's live codes."""
    WRONG = "wrong"
    EXPIRED = "expired"
    USED = "used"
    UNKNOWN = "unknown"
    EXHAUSTED = "exhausted"  # no tries left for this address: the code is dead here even if right


OWN_TRIES, OTHER_TRIES = "attempts", "attempts_elsewhere"


@dataclass(frozen=True)
class StoredCode:
    code_id: str
    address: str  # the requesting address's key
    code_digest: str
    expires_at: datetime
    used: bool

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "StoredCode":
        return cls(doc["_id"], doc.get("address", ""), doc["code_digest"], doc["expires_at"], bool(doc.get("used")))

    def live(self, now: datetime) -> bool:
        return not self.used and now < self.expires_at


def try_budget(code: StoredCode, address: str, own_limit: int, other_limit: int) -> tuple[str, int]:
    """Which of the code's two try budgets a try from `address` spends: the requesting
    address's own, or the one all other addresses share (so strangers cannot use up the
    owner's tries)."""
    return (OWN_TRIES, own_limit) if code.address == address else (OTHER_TRIES, other_limit)


def matches(code: StoredCode, offered: str) -> bool:
    return hmac.compare_digest(code.code_digest, digest(offered or ""))


def verdict_without_match(codes: list[StoredCode], offered: str, now: datetime, judged: bool) -> CodeVerdict:
    """Why a try that matched no live code failed: it was judged and wrong; or nothing could be
    judged because the code was used, expired, out of tries here, or never requested."""
    if judged:
        return CodeVerdict.WRONG
    if not codes:
        return CodeVerdict.UNKNOWN
    if any(c.used and matches(c, offered) for c in codes):
        return CodeVerdict.USED
    if any(c.live(now) for c in codes):
        return CodeVerdict.EXHAUSTED
    return CodeVerdict.EXPIRED if any(not c.used for c in codes) else CodeVerdict.UNKNOWN


def yearly_guess_probability(digits: int, codes_per_hour: int, tries_per_code: int) -> float:
    """Worst-case chance that guessing ever hits a code of one account in a year: every try is
    judged against one code and counted first, so at most codes_per_hour * 8760 codes with
    tries_per_code tries each, each try right with probability 10**-digits (union bound)."""
    return codes_per_hour * 24 * 365 * tries_per_code / float(10 ** digits)


# ---------------------------------------------------------------- request limits
def seconds_until(moment: datetime, now: datetime) -> int:
    """Whole seconds a client should wait, never less than 1."""
    return max(1, math.ceil((moment - now).total_seconds()))
