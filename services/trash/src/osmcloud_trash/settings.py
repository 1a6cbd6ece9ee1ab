from osmcloud_common.settings import ServiceSettings


class TrashSettings(ServiceSettings):
    service_name: str = "trash"
    http_port: int = 8083
    retention_days: int = 30
