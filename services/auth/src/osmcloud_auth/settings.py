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
