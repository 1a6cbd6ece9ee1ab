from osmcloud_common.settings import ServiceSettings

MIB = 1024 * 1024


class BillingSettings(ServiceSettings):
    service_name: str = "billing"
    http_port: int = 8084
    start_quota_bytes: int = 5 * MIB
    start_max_file_bytes: int = 2 * MIB
    start_max_files: int = 10_000
    pro_quota_bytes: int = 3000 * MIB
