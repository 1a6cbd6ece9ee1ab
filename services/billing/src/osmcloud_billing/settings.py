from osmcloud_common.settings import ServiceSettings

MIB = 1024 * 1024


class BillingSettings(ServiceSettings):
    service_name: str = "billing"
    http_port: int = 8084
    start_quota_bytes: int = 5 * MIB
    start_max_file_bytes: int = 2 * MIB
    start_max_files: int = 10_000
    pro_quota_bytes: int = 3000 * MIB
    grace_days: int = 365
    # products that grant Pro, comma-separated store product ids
    pro_products: str = "osmcloud.pro.monthly,osmcloud.pro.annual"
    # key the sandbox store signs receipts with (dev and tests only; real stores are not built yet)
    sandbox_receipt_key: str = "osmcloud-sandbox-key"
    # how often the deadline job looks for expiries and grace ends
    deadline_scan_seconds: float = 1.0
    # files' own address: a plan change is handed over there before it answers (read-your-writes)
    files_url: str = "http://127.0.0.1:8082"

    @property
    def pro_product_ids(self) -> frozenset[str]:
        return frozenset(p.strip() for p in self.pro_products.split(",") if p.strip())
