from osmcloud_common.settings import ServiceSettings


class FilesSettings(ServiceSettings):
    service_name: str = "files"
    http_port: int = 8082
    # hard cap of one upload whatever the plan says (the reference server allows 50 MB)
    max_upload_bytes: int = 4 * 1024 * 1024 * 1024
