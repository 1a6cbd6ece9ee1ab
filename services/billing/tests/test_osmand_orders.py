from datetime import UTC, datetime, timedelta

import pytest

from osmcloud_billing.osmand_orders import judge_known_orders, judge_verified_order
from osmcloud_billing.receipts import ReceiptRejected, SandboxVerifier, VerifiedPurchase, sign_sandbox_receipt

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
PRO = frozenset({"osmcloud.pro.annual"})


def purchase(expires_in=timedelta(days=30), product="osmcloud.pro.annual") -> VerifiedPurchase:
    return VerifiedPurchase(platform="google", order_id="GPA.1", product_id=product,
                            purchased_at=NOW - timedelta(days=1),
                            expires_at=NOW + expires_in)


def test_a_fresh_verified_order_may_be_linked():
    assert judge_verified_order(purchase(), None, "u1", NOW, PRO) is None
    assert judge_verified_order(purchase(), {"user_id": "u1", "expires_at": NOW}, "u1", NOW, PRO) is None


def test_an_order_of_another_account_is_refused_also_before_sign_up():
    assert judge_verified_order(purchase(), {"user_id": "u2", "expires_at": NOW}, "u1", NOW, PRO).outcome == \
        "other_account"
    assert judge_verified_order(purchase(), {"user_id": "u2", "expires_at": NOW}, None, NOW, PRO).outcome == \
        "other_account"


def test_expired_and_ineligible_orders():
    assert judge_verified_order(purchase(-timedelta(days=1)), None, "u1", NOW, PRO).outcome == "expired"
    # a later expiry billing already knows (a renewal) keeps it valid
    renewed = {"user_id": "u1", "expires_at": NOW + timedelta(days=3)}
    assert judge_verified_order(purchase(-timedelta(days=1)), renewed, "u1", NOW, PRO) is None
    assert judge_verified_order(purchase(product="maps.world"), None, "u1", NOW, PRO).outcome == "not_eligible"


def test_bare_order_ids_are_judged_on_the_orders_billing_knows():
    assert judge_known_orders([], "u1", NOW).outcome == "unknown"
    mine = {"user_id": "u1", "expires_at": NOW + timedelta(days=1)}
    assert judge_known_orders([mine], "u1", NOW).outcome == "linked"
    assert judge_known_orders([mine], "u2", NOW).outcome == "other_account"
    assert judge_known_orders([mine], None, NOW).outcome == "other_account"
    assert judge_known_orders([{**mine, "expires_at": NOW}], "u1", NOW).outcome == "expired"


def test_a_sandbox_receipt_is_an_order_token_that_names_its_platform():
    verifier = SandboxVerifier("k")
    token = sign_sandbox_receipt("k", platform="ios", order_id="A1", product_id="osmcloud.pro.annual",
                                 purchased_at=NOW, expires_at=NOW + timedelta(days=30))
    assert verifier.verify_order_token(token).platform == "ios"
    assert verifier.verify("ios", token).order_id == "A1"
    with pytest.raises(ReceiptRejected):
        verifier.verify("google", token)
    with pytest.raises(ReceiptRejected):
        verifier.verify_order_token("GPA.3345-0000-1111")
