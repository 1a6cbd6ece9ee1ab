from pydantic import Field

from osmcloud_common.settings import ServiceSettings


class AuthSettings(ServiceSettings):
    service_name: str = "auth"
    http_port: int = 8081
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    mail_from: str = "OsmCloud <no-reply@osmcloud.local>"
    code_digits: int = 6
    code_ttl_seconds: int = 3600
    code_resend_seconds: int = 30
    code_max_attempts: int = 5
    # Hourly caps on mailed codes (login and account deletion together). Per e-mail: a person
    # needs one or two; per client address: a whole office or carrier NAT shares one, and so
    # does a test suite (~150 sign-ups a run from 127.0.0.1).
    code_requests_per_email_hour: int = Field(default=5, ge=1)
    code_requests_per_address_hour: int = Field(default=500, ge=1)
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
