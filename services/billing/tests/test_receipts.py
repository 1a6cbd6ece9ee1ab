from datetime import UTC, datetime, timedelta

import pytest

from osmcloud_billing.receipts import ReceiptRejected, SandboxVerifier, sign_sandbox_receipt

AT = datetime(2026, 6, 1, tzinfo=UTC)


def _receipt(key="k", platform="sandbox", expires=AT + timedelta(days=30)):
    return sign_sandbox_receipt(key, platform=platform, order_id="GPA.1", product_id="osmcloud.pro.monthly",
                                purchased_at=AT, expires_at=expires)


def test_a_signed_receipt_verifies():
    purchase = SandboxVerifier("k").verify("sandbox", _receipt())
    assert (purchase.order_id, purchase.product_id, purchase.expires_at) == (
        "GPA.1", "osmcloud.pro.monthly", AT + timedelta(days=30))


@pytest.mark.parametrize("receipt", ["", "garbage", "a.b", "!!!.???", _receipt(key="other"),
                                     _receipt().split(".")[0] + ".", _receipt()[:-2] + "xx"])
def test_forged_or_malformed_receipts_are_rejected(receipt):
    with pytest.raises(ReceiptRejected):
        SandboxVerifier("k").verify("sandbox", receipt)


def test_a_receipt_for_another_platform_or_with_bad_dates_is_rejected():
    with pytest.raises(ReceiptRejected):
        SandboxVerifier("k").verify("ios", _receipt())
    with pytest.raises(ReceiptRejected):
        SandboxVerifier("k").verify("sandbox", _receipt(expires=AT - timedelta(days=1)))
