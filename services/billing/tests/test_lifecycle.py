from datetime import UTC, datetime, timedelta

import pytest

from osmcloud_billing.errors import ReceiptExpired, StartNotAvailable
from osmcloud_billing.lifecycle import Subscription, activate_start, apply_purchase, due_transition
from osmcloud_billing.plans import plans_from
from osmcloud_billing.receipts import VerifiedPurchase
from osmcloud_billing.settings import BillingSettings

PLANS = plans_from(BillingSettings())
NOW = datetime(2026, 6, 1, tzinfo=UTC)
MONTH = timedelta(days=30)


def _purchase(expires: datetime, order="o1") -> VerifiedPurchase:
    return VerifiedPurchase("sandbox", order, "osmcloud.pro.monthly", NOW, expires)


def test_start_is_explicit_and_refused_while_pro_is_active_or_in_grace():
    t = activate_start(Subscription(), PLANS)
    assert t.after == Subscription(plan="start", status="active") and t.event.event_type == "subscription-activated"
    assert activate_start(t.after, PLANS).event is None  # already on Start
    for status in ("active", "grace"):
        with pytest.raises(StartNotAvailable) as info:
            activate_start(Subscription(plan="pro", status=status, expires_at=NOW), PLANS)
        assert "Pro" in info.value.message


def test_purchase_activates_then_renews_and_a_repeated_receipt_changes_nothing():
    first = apply_purchase(Subscription(plan="start", status="active"), _purchase(NOW + MONTH), NOW, PLANS)
    assert first.after == Subscription(plan="pro", status="active", expires_at=NOW + MONTH)
    assert first.event.event_type == "subscription-activated" and first.event.entitlement.plan == "pro"
    assert apply_purchase(first.after, _purchase(NOW + MONTH), NOW, PLANS).event is None
    renewed = apply_purchase(first.after, _purchase(NOW + 2 * MONTH), NOW, PLANS)
    assert renewed.event.event_type == "subscription-renewed" and renewed.after.expires_at == NOW + 2 * MONTH


def test_an_expired_receipt_is_refused():
    with pytest.raises(ReceiptExpired):
        apply_purchase(Subscription(), _purchase(NOW - timedelta(seconds=1)), NOW, PLANS)


def test_expiry_opens_a_year_of_grace_on_start_rules_then_grace_ends():
    active = Subscription(plan="pro", status="active", expires_at=NOW)
    assert due_transition(active, NOW - timedelta(seconds=1), PLANS) is None
    expired = due_transition(active, NOW + timedelta(seconds=1), PLANS)
    assert expired.event.event_type == "subscription-expired"
    assert expired.after.status == "grace" and expired.after.grace_until == NOW + timedelta(days=365)
    entitlement = expired.event.entitlement
    assert entitlement.plan == "start" and entitlement.grace_until == NOW + timedelta(days=365)
    # uploads follow Start; restores may bring back what Pro stored, and Pro's storage limit stays
    assert expired.event.entitlement.quota_bytes == PLANS.start.quota_bytes
    assert expired.event.entitlement.grace_quota_bytes == PLANS.pro.quota_bytes
    assert expired.event.entitlement.storage_limit == PLANS.pro.storage_limit == 2 * PLANS.pro.quota_bytes
    grace = expired.after
    assert due_transition(grace, NOW + timedelta(days=365) - timedelta(seconds=1), PLANS) is None
    ended = due_transition(grace, NOW + timedelta(days=365), PLANS)
    assert ended.event.event_type == "grace-period-ended" and ended.after.status == "expired"
    assert ended.event.entitlement.grace_until is None and ended.event.entitlement.grace_quota_bytes is None
    assert ended.event.entitlement.storage_limit == 2 * PLANS.start.quota_bytes
    assert due_transition(ended.after, NOW + timedelta(days=999), PLANS) is None


def test_renewal_during_grace_or_after_it_restores_pro():
    grace = Subscription(plan="pro", status="grace", expires_at=NOW, grace_until=NOW + timedelta(days=365))
    renewed = apply_purchase(grace, _purchase(NOW + 2 * MONTH, "o2"), NOW + MONTH, PLANS)
    assert renewed.event.event_type == "subscription-renewed" and renewed.after.status == "active"
    expired = Subscription(plan="pro", status="expired", expires_at=NOW, grace_until=NOW)
    again = apply_purchase(expired, _purchase(NOW + 2 * MONTH, "o3"), NOW + MONTH, PLANS)
    assert again.event.event_type == "subscription-activated" and again.after.status == "active"
