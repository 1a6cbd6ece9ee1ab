from pydantic import Field

from osmcloud_common.settings import ServiceSettings

from .domain import yearly_guess_probability

# the most a configuration may let guessing succeed on one account in a year
MAX_YEARLY_GUESS_PROBABILITY = 1e-6


class AuthSettings(ServiceSettings):
    service_name: str = "auth"
    http_port: int = 8081
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    mail_from: str = "OsmCloud <no-reply@osmcloud.local>"
    # One-time codes (docs/security.md "Codes"): 12 digits for both APIs (OsmAnd's apps accept
    # any number of digits), valid 1 h, resent to the same address after 30 s. Each code
    # allows CODE_MAX_ATTEMPTS tries from the address that asked for it and
    # CODE_MAX_ATTEMPTS_ELSEWHERE from all other addresses together, so strangers cannot use up
    # the owner's tries; a request from another address gets a code of its own instead of
    # replacing the owner's.
    code_digits: int = Field(default=12, ge=4, le=18)
    code_ttl_seconds: int = 3600
    code_resend_seconds: int = 30
    code_max_attempts: int = Field(default=5, ge=1)
    code_max_attempts_elsewhere: int = Field(default=2, ge=0)
    # Hourly caps on mailed codes (login and account deletion together): per e-mail and
    # requesting address (a person needs one or two); per e-mail from all addresses together
    # (what bounds guessing); per client address over all e-mails (a whole office or carrier
    # NAT shares one, and so does a test suite: ~150 sign-ups a run from 127.0.0.1).
    code_requests_per_email_hour: int = Field(default=5, ge=1)
    code_requests_per_email_hour_total: int = Field(default=6, ge=1)
    code_requests_per_address_hour: int = Field(default=500, ge=1)
    # Addresses a code of this e-mail was used from within KNOWN_ADDRESS_DAYS are "known": their
    # requests count against a cap of their own, so strangers elsewhere who use up
    # CODE_REQUESTS_PER_EMAIL_HOUR_TOTAL never stop the owner from where they logged in before.
    code_requests_per_email_hour_known: int = Field(default=6, ge=1)
    known_address_days: int = Field(default=90, ge=1)
    # billing's own address: OsmAnd's orderid is verified and linked there (service to service)
    billing_url: str = "http://127.0.0.1:8084"
    billing_timeout_seconds: float = 10.0
    # The verify cache (token_cache.py, verify_peers.py): how many tokens each replica keeps
    # in memory (0 = none: every verify reads the database), how long a lease lasts and how
    # often it is renewed (a logout waits out one lease only for a replica it cannot reach),
    # how long a logout waits for a replica to confirm, and the URL other replicas reach this
    # one at (default: the listen address; a container's own address when listening on 0.0.0.0).
    verify_cache_entries: int = Field(default=20_000, ge=0)
    verify_cache_lease_seconds: float = Field(default=5.0, gt=0)
    verify_cache_renew_seconds: float = Field(default=1.0, gt=0)
    verify_cache_peer_timeout_seconds: float = Field(default=2.0, gt=0)
    verify_cache_url: str = ""
    # How long the web app's session cookie lives (browser_sessions.py); browsers cap a cookie
    # at 400 days. Signing out or logging the device out ends it sooner.
    browser_session_days: int = Field(default=90, ge=1, le=400)

    def yearly_guess_probability(self) -> float:
        codes_an_hour = self.code_requests_per_email_hour_total + self.code_requests_per_email_hour_known
        return yearly_guess_probability(self.code_digits, codes_an_hour,
                                        self.code_max_attempts + self.code_max_attempts_elsewhere)

    def startup_problems(self) -> list[str]:
        problems = super().startup_problems()
        chance = self.yearly_guess_probability()
        if chance > MAX_YEARLY_GUESS_PROBABILITY:
            problems.append("CODE_DIGITS / CODE_REQUESTS_PER_EMAIL_HOUR_TOTAL / _KNOWN / CODE_MAX_ATTEMPTS(_ELSEWHERE) "
                            f"let guessing succeed on an account with probability {chance:.1e} a year (at most "
                            f"{MAX_YEARLY_GUESS_PROBABILITY:.0e}): more digits or fewer codes or tries")
        return problems
