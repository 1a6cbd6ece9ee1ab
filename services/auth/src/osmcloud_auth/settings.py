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
