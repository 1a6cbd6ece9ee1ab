"""One-time codes: issuing (hourly limits, resend cooldown, mail) and checking (expiry,
single use, limited tries). A code is only good for the purpose it was mailed for.

Strangers cannot stop the owner (docs/security.md "Codes"): every requesting address gets a
code of its own (a request from elsewhere never replaces the code the owner holds), and every
code has two try budgets, one for the address that asked for it and one shared by all other
addresses, so wrong tries from elsewhere never use up the owner's. Every try is counted
against a code before it is judged, which bounds how many guesses an account can ever see."""

from datetime import timedelta

from osmcloud_common.clock import Clock
from osmcloud_common.logging import get_logger

from .domain import (
    CodeVerdict,
    Purpose,
    StoredCode,
    digest,
    matches,
    new_code,
    seconds_until,
    try_budget,
    verdict_without_match,
)
from .errors import CodeRejected, MailFailed, TooManyCodes
from .limits import address_key, email_address_key, email_key, known_addresses_key
from .ports import CodeStorePort, LimitsPort, MailerPort
from .settings import AuthSettings

log = get_logger(__name__)

CODE_ERRORS = {
    CodeVerdict.WRONG: ("code_wrong", "the code is wrong"),
    CodeVerdict.EXPIRED: ("code_expired", "the code has expired; ask for a new one"),
    CodeVerdict.USED: ("code_used", "the code was already used; ask for a new one"),
    CodeVerdict.EXHAUSTED: ("code_exhausted", "too many wrong tries for this code; ask for a new one"),
}

ASK_FOR_ONE = {
    Purpose.LOGIN: "POST /api/auth/login-codes",
    Purpose.OSMAND_LOGIN: "POST /userdata/user-register",
    Purpose.DELETE_ACCOUNT: "POST /api/auth/account/deletion-codes",
    Purpose.OSMAND_DELETE_ACCOUNT: "POST /userdata/send-code",
}


def _too_many(code: str, message: str, wait: int) -> TooManyCodes:
    return TooManyCodes(f"{message}; ask again in {wait} s", code=code, retry_after_seconds=wait)


class Codes:
    def __init__(self, clock: Clock, store: CodeStorePort, limits: LimitsPort, mailer: MailerPort,
                 settings: AuthSettings) -> None:
        self.clock, self.store, self.limits, self.mailer, self.settings = clock, store, limits, mailer, settings

    async def issue(self, email: str, purpose: Purpose, address: str | None) -> dict[str, int | str]:
        """Mails a new code unless a limit says no (TooManyCodes, with when to ask again).

        Order: the hourly limits (this address over all e-mails; this e-mail from this address;
        this e-mail from all unknown addresses, or from all its known ones) count the request first;
        if a later one or the resend cooldown refuses it, the counts are given back, so only mailed
        codes count."""
        s, now = self.settings, self.clock.now()
        where = address_key(address)
        known = await self.store.is_known_address(email, where, now - timedelta(days=s.known_address_days))
        everywhere = ((known_addresses_key(email), s.code_requests_per_email_hour_known, "from the addresses it "
                       "logged in from") if known else
                      (email_key(email), s.code_requests_per_email_hour_total, "from all other addresses"))
        taken: list[str] = []
        try:
            for key, limit, error, message in (
                    (where, s.code_requests_per_address_hour, "too_many_codes_from_address",
                     "too many codes were requested from this address"),
                    (email_address_key(email, where), s.code_requests_per_email_hour, "too_many_codes_for_email",
                     f"too many codes were mailed to this e-mail from this address (at most "
                     f"{s.code_requests_per_email_hour} an hour)"),
                    (everywhere[0], everywhere[1], "too_many_codes_for_email",
                     f"too many codes were mailed to this e-mail (at most {everywhere[1]} an hour {everywhere[2]})")):
                reopens = await self.limits.take(key, limit, now)
                if reopens is not None:
                    raise _too_many(error, message, seconds_until(reopens, now))
                taken.append(key)
            code = new_code(s.code_digits)
            retry_at = await self.store.replace_code(email, purpose, where, digest(code), now,
                                                     timedelta(seconds=s.code_ttl_seconds),
                                                     timedelta(seconds=s.code_resend_seconds))
            if retry_at is not None:
                raise _too_many("code_recently_sent", "a code was sent moments ago", seconds_until(retry_at, now))
        except TooManyCodes:
            for key in taken:
                await self.limits.give_back(key)
            raise
        try:
            await self.mailer.send_code(email, code, purpose, s.code_ttl_seconds // 60)
        except Exception as exc:
            log.error("mail failed", error=repr(exc))
            raise MailFailed("the code could not be mailed; try again shortly") from exc
        return {"status": "sent", "expires_in_seconds": s.code_ttl_seconds,
                "resend_after_seconds": s.code_resend_seconds}

    async def check(self, email: str, purpose: Purpose, offered: str, address: str | None, *,
                    use: bool = True) -> None:
        """Accepts the code (and uses it up unless `use` is False: OsmAnd's confirm-code only
        asks), or raises CodeRejected saying why not. The try is counted against every live code of this
        e-mail and purpose it is compared with, in the budget this address may spend, before
        it is judged."""
        s, now, where = self.settings, self.clock.now(), address_key(address)
        codes = [StoredCode.from_doc(doc) for doc in await self.store.codes_for(email, purpose)]
        judged = False
        for code in codes:
            if not code.live(now):
                continue
            budget, limit = try_budget(code, where, s.code_max_attempts, s.code_max_attempts_elsewhere)
            if not await self.store.take_try(code.code_id, budget, limit):
                continue
            judged = True
            if matches(code, offered) and (not use or await self.store.mark_used(code.code_id, code.code_digest)):
                await self.store.remember_address(email, where, now)
                return
        verdict = verdict_without_match(codes, offered, now, judged)
        if verdict is CodeVerdict.UNKNOWN:
            raise CodeRejected(f"no code was requested for this purpose; ask for one first ({ASK_FOR_ONE[purpose]})",
                               code="code_unknown")
        error_code, message = CODE_ERRORS[verdict]
        raise CodeRejected(message, code=error_code)

    async def any_requested(self, email: str, purpose: Purpose) -> bool:
        return bool(await self.store.codes_for(email, purpose))
