"""One-time codes: issuing (hourly limits, resend cooldown, mail) and checking (expiry,
single use, a limited number of tries). Login and account deletion use separate codes:
a code is only good for the purpose it was mailed for."""

from datetime import timedelta

from osmcloud_common.errors import ApiError, BadRequest, TooManyRequests
from osmcloud_common.logging import get_logger
from osmcloud_common.runtime import Runtime

from .domain import CodeVerdict, Purpose, digest, judge_code, new_code, seconds_until
from .limits import RequestLimits, address_key, email_key
from .mailer import Mailer
from .settings import AuthSettings
from .store import AuthStore

log = get_logger(__name__)

CODE_ERRORS = {
    CodeVerdict.WRONG: ("code_wrong", "the code is wrong"),
    CodeVerdict.EXPIRED: ("code_expired", "the code has expired; ask for a new one"),
    CodeVerdict.USED: ("code_used", "the code was already used; ask for a new one"),
    CodeVerdict.EXHAUSTED: ("code_exhausted", "too many wrong tries for this code; ask for a new one"),
}

ASK_FOR_ONE = {
    Purpose.LOGIN: "POST /api/auth/login-codes",
    Purpose.DELETE_ACCOUNT: "POST /api/auth/account/deletion-codes",
}


def _too_many(code: str, message: str, wait: int) -> TooManyRequests:
    return TooManyRequests(f"{message}; ask again in {wait} s", code=code, details={"retry_after_seconds": wait})


class Codes:
    def __init__(self, runtime: Runtime, store: AuthStore, limits: RequestLimits, mailer: Mailer,
                 settings: AuthSettings) -> None:
        self.rt, self.store, self.limits, self.mailer, self.settings = runtime, store, limits, mailer, settings

    async def issue(self, email: str, purpose: Purpose, address: str | None, digits: int | None = None) -> dict:
        """Mails a new code unless a limit says no (429 with `retry_after_seconds`).

        Order: the per-address and per-e-mail hourly limits count the request first; if the
        resend cooldown then refuses it, the counts are given back, so only mailed codes count."""
        s, now = self.settings, self.rt.clock.now()
        taken: list[str] = []
        try:
            if address:
                reopens = await self.limits.take(address_key(address), s.code_requests_per_address_hour, now)
                if reopens is not None:
                    raise _too_many("too_many_codes_from_address",
                                    "too many codes were requested from this address", seconds_until(reopens, now))
                taken.append(address_key(address))
            reopens = await self.limits.take(email_key(email), s.code_requests_per_email_hour, now)
            if reopens is not None:
                raise _too_many("too_many_codes_for_email",
                                f"too many codes were mailed to this address (at most "
                                f"{s.code_requests_per_email_hour} an hour)", seconds_until(reopens, now))
            taken.append(email_key(email))
            code = new_code(digits or s.code_digits)
            retry_at = await self.store.replace_code(email, purpose, digest(code), now,
                                                     timedelta(seconds=s.code_ttl_seconds),
                                                     timedelta(seconds=s.code_resend_seconds))
            if retry_at is not None:
                raise _too_many("code_recently_sent", "a code was sent moments ago", seconds_until(retry_at, now))
        except TooManyRequests:
            for key in taken:
                await self.limits.give_back(key)
            raise
        try:
            await self.mailer.send_code(email, code, purpose, s.code_ttl_seconds // 60)
        except Exception as exc:
            log.error("mail failed", error=repr(exc))
            raise ApiError("the code could not be mailed; try again shortly", code="mail_failed", status=503)
        return {"status": "sent", "expires_in_seconds": s.code_ttl_seconds,
                "resend_after_seconds": s.code_resend_seconds}

    async def check(self, email: str, purpose: Purpose, code: str) -> None:
        """Accepts the code once (400 saying why otherwise). Every try is counted before it is
        judged, so no more than CODE_MAX_ATTEMPTS tries are ever judged, right or wrong."""
        issued = await self.store.take_attempt(email, purpose, self.settings.code_max_attempts)
        if issued is None:
            state = await self.store.code_state(email, purpose)
            if state is None:
                raise BadRequest(f"no code was requested for this purpose; ask for one first ({ASK_FOR_ONE[purpose]})",
                                 code="code_unknown")
            verdict = CodeVerdict.USED if state.used else CodeVerdict.EXHAUSTED
        else:
            verdict = judge_code(issued, code, self.rt.clock.now(), self.settings.code_max_attempts)
            if verdict is CodeVerdict.OK and not await self.store.mark_used(email, purpose, issued.code_digest):
                verdict = CodeVerdict.USED
        if verdict is not CodeVerdict.OK:
            error_code, message = CODE_ERRORS[verdict]
            raise BadRequest(message, code=error_code)
