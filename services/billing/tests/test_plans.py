from osmcloud_billing.plans import pro_entitlement, start_entitlement
from osmcloud_billing.settings import BillingSettings


def test_plans_follow_the_product_rules():
    settings = BillingSettings()
    start = start_entitlement(settings)
    assert start.quota_bytes == 5 * 2**20 and start.max_file_bytes == 2 * 2**20 and start.max_files == 10_000
    assert set(start.allowed_types) == {"FAVOURITES", "GLOBAL", "PROFILE", "OSM_EDITS", "OSM_NOTES"}
    pro = pro_entitlement(settings)
    assert pro.quota_bytes == 3000 * 2**20 and pro.allowed_types is None


def test_limits_are_configurable(monkeypatch):
    monkeypatch.setenv("START_QUOTA_BYTES", "1000")
    assert start_entitlement(BillingSettings()).quota_bytes == 1000
