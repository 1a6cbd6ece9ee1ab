from typing import Literal

from osmcloud_common.settings import ServiceSettings, secret_problem

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
    # The sandbox store (dev and tests only; real stores are not built yet): off unless
    # SANDBOX_STORE=true, and then its receipts must be signed with SANDBOX_RECEIPT_KEY, which
    # has no default. Without it no receipt verifies: purchases and orderids are refused.
    sandbox_store: bool = False
    sandbox_receipt_key: str = ""
    # how often the deadline job looks for expiries and grace ends
    deadline_scan_seconds: float = 1.0
    # the plan every new account gets (docs/operators.md): none (the user chooses Start or buys
    # Pro; OsmAnd's sign-ups get Start), start, or pro (Pro without an end date, e.g. a family server)
    default_plan: Literal["none", "start", "pro"] = "none"
    # files' own address: a plan change is handed over there before it answers (read-your-writes)
    files_url: str = "http://127.0.0.1:8082"

    def startup_problems(self) -> list[str]:
        problems = super().startup_problems()
        if self.sandbox_store:
            problem = secret_problem("SANDBOX_RECEIPT_KEY", self.sandbox_receipt_key, min_chars=32)
            if problem:
                problems.append(f"{problem} (SANDBOX_STORE=true needs it)")
        return problems

    @property
    def pro_product_ids(self) -> frozenset[str]:
        return frozenset(p.strip() for p in self.pro_products.split(",") if p.strip())
