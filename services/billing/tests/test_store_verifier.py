"""The sandbox store exists only when explicitly enabled, and then only with a strong key."""

from datetime import UTC, datetime, timedelta

import pytest

from osmcloud_billing.receipts import (
    NoStoreVerifier,
    ReceiptRejected,
    SandboxVerifier,
    sign_sandbox_receipt,
    verifier_from,
)
from osmcloud_billing.settings import BillingSettings
from osmcloud_common.settings import ConfigurationError

NOW = datetime(2026, 1, 1, tzinfo=UTC)
FORGED = sign_sandbox_receipt("osmcloud-sandbox-key", platform="sandbox", order_id="o-1",
                              product_id="osmcloud.pro.annual", purchased_at=NOW, expires_at=NOW + timedelta(days=365))
SECRET = "g" * 40


def test_without_the_sandbox_no_receipt_verifies():
    verifier = verifier_from(False, "")
    assert isinstance(verifier, NoStoreVerifier)
    with pytest.raises(ReceiptRejected):
        verifier.verify("sandbox", FORGED)
    with pytest.raises(ReceiptRejected):
        verifier.verify_order_token(FORGED)


def test_the_sandbox_is_off_by_default(monkeypatch):
    monkeypatch.delenv("SANDBOX_STORE", raising=False)
    assert BillingSettings(gateway_secret=SECRET).sandbox_store is False
    BillingSettings(gateway_secret=SECRET).check_startup()


@pytest.mark.parametrize("key", ["", "osmcloud-sandbox-key", "too-short-for-a-key"])
def test_an_enabled_sandbox_needs_a_strong_key(key):
    with pytest.raises(ConfigurationError, match="SANDBOX_RECEIPT_KEY"):
        BillingSettings(gateway_secret=SECRET, sandbox_store=True, sandbox_receipt_key=key).check_startup()


def test_an_enabled_sandbox_with_its_own_key_refuses_the_published_one():
    key = "k" * 40
    BillingSettings(gateway_secret=SECRET, sandbox_store=True, sandbox_receipt_key=key).check_startup()
    assert isinstance(verifier_from(True, key), SandboxVerifier)
    with pytest.raises(ReceiptRejected):
        verifier_from(True, key).verify("sandbox", FORGED)
