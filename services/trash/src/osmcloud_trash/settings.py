from osmcloud_common.settings import ServiceSettings


class TrashSettings(ServiceSettings):
    service_name: str = "trash"
    http_port: int = 8083
    retention_days: int = 30
    # files' own address (service to service, not through the gateway): restore is a
    # synchronous call there, see docs/architecture.md "Internal calls"
    files_url: str = "http://127.0.0.1:8082"
    files_timeout_seconds: float = 30.0
    # auth's own address: OsmAnd's /userdata/empty-trash is authenticated by deviceid +
    # accessToken, checked there on every call (osmcloud_common.osmand)
    auth_url: str = "http://127.0.0.1:8081"
    # the automatic purge: how often each replica looks for expired items, how many it
    # claims at once, and after how long a claim left by a crashed replica is taken over
    purge_interval_seconds: float = 1.0
    purge_batch_size: int = 2000
    claim_lease_seconds: float = 120.0
    # how fresh the items-in-trash gauge is (counting is a scan on FerretDB)
    items_gauge_seconds: float = 30.0
