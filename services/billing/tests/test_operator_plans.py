from datetime import UTC, datetime, timedelta

import pytest

from osmcloud_billing.lifecycle import Subscription, apply_purchase, due_transition
from osmcloud_billing.operator_plans import (
    OperatorPlanRefused,
    Overrides,
    grant_pro,
    grant_start,
    plans_for,
    revoke,
    set_overrides,
    validate_overrides,
)
from osmcloud_billing.plans import plans_from
from osmcloud_billing.receipts import VerifiedPurchase
from osmcloud_billing.settings import BillingSettings

PLANS = plans_from(BillingSettings())
NOW = datetime(2026, 6, 1, tzinfo=UTC)
MONTH = timedelta(days=30)
YEAR = timedelta(days=365)


def test_pro_without_an_end_date_has_no_deadline_and_no_receipt_shortens_it():
    t = grant_pro(Subscription(plan="start", status="active"), None, None, NOW, PLANS)
    assert t.after == Subscription(plan="pro", status="active", expires_at=None)
    assert t.event.event_type == "subscription-activated" and t.event.entitlement.plan == "pro"
    assert due_transition(t.after, NOW + 10 * YEAR, PLANS) is None
    receipt = VerifiedPurchase("sandbox", "o1", "osmcloud.pro.monthly", NOW, NOW + MONTH)
    assert apply_purchase(t.after, receipt, NOW, PLANS).event is None
    assert grant_pro(t.after, None, None, NOW, PLANS).event is None  # granted again: nothing new


def test_pro_until_a_date_combines_with_a_receipt_the_later_end_wins():
    store = Subscription(plan="pro", status="active", expires_at=NOW + 2 * MONTH)
    shorter = grant_pro(store, NOW + MONTH, NOW + 2 * MONTH, NOW, PLANS)
    assert shorter.event is None  # the receipt runs longer
    longer = grant_pro(store, NOW + 3 * MONTH, NOW + 2 * MONTH, NOW, PLANS)
    assert longer.after.expires_at == NOW + 3 * MONTH and longer.event.event_type == "subscription-renewed"
    # and its end is a deadline like a receipt's: expiry, then the grace year
    expired = due_transition(longer.after, NOW + 3 * MONTH, PLANS)
    assert expired.after.status == "grace" and expired.after.grace_until == NOW + 3 * MONTH + YEAR


def test_an_end_date_in_the_past_is_refused():
    with pytest.raises(OperatorPlanRefused) as info:
        grant_pro(Subscription(), NOW - MONTH, None, NOW, PLANS)
    assert info.value.code == "end_in_past"


def test_a_grant_during_grace_restores_pro():
    grace = Subscription(plan="pro", status="grace", expires_at=NOW - MONTH, grace_until=NOW + 11 * MONTH)
    t = grant_pro(grace, None, None, NOW, PLANS)
    assert t.after == Subscription(plan="pro", status="active") and t.event.event_type == "subscription-renewed"


def test_revoke_starts_the_grace_year_now_unless_a_receipt_still_runs():
    granted = Subscription(plan="pro", status="active", expires_at=None)
    t = revoke(granted, None, NOW, PLANS)
    assert t.after == Subscription(plan="pro", status="grace", expires_at=NOW, grace_until=NOW + YEAR)
    assert t.event.event_type == "subscription-expired"
    assert t.event.entitlement.plan == "start" and t.event.entitlement.grace_until == NOW + YEAR
    assert t.event.entitlement.grace_quota_bytes == PLANS.pro.quota_bytes
    kept = revoke(granted, NOW + MONTH, NOW, PLANS)
    assert kept.after.expires_at == NOW + MONTH and kept.event.event_type == "subscription-renewed"
    assert revoke(t.after, None, NOW, PLANS).event is None  # in grace already
    assert revoke(Subscription(), None, NOW, PLANS).event is None


def test_grant_start_gives_start_or_ends_an_operators_pro():
    assert grant_start(Subscription(), None, NOW, PLANS).after == Subscription(plan="start", status="active")
    assert grant_start(Subscription(plan="pro", status="active"), None, NOW, PLANS).after.status == "grace"
    paid = Subscription(plan="pro", status="active", expires_at=NOW + MONTH)
    assert grant_start(paid, NOW + MONTH, NOW, PLANS).event is None  # the user's subscription runs to its end
    assert grant_start(Subscription(plan="pro", status="grace", grace_until=NOW), None, NOW, PLANS).event is None


def test_overrides_replace_the_quota_and_file_count_of_every_plan():
    plans = plans_for(PLANS, {"overrides": {"quota_bytes": 7_000, "max_files": 3}})
    for entitlement in (plans.pro, plans.start):
        assert (entitlement.quota_bytes, entitlement.max_files, entitlement.storage_limit) == (7_000, 3, 14_000)
    assert plans_for(PLANS, {"overrides": None}) is PLANS
    only_files = plans_for(PLANS, {"overrides": {"quota_bytes": None, "max_files": 5}})
    assert only_files.pro.quota_bytes == PLANS.pro.quota_bytes and only_files.pro.max_files == 5


def test_overrides_send_the_current_entitlement_or_nothing_without_a_plan():
    plans = plans_for(PLANS, {"overrides": {"quota_bytes": 1000, "max_files": None}})
    pro = set_overrides(Subscription(plan="pro", status="active"), plans)
    assert pro.event.event_type == "entitlement-changed" and pro.event.entitlement.quota_bytes == 1000
    grace = set_overrides(Subscription(plan="pro", status="grace", grace_until=NOW), plans)
    assert grace.event.entitlement.plan == "start" and grace.event.entitlement.grace_until == NOW
    assert set_overrides(Subscription(), plans).event is None
    assert Overrides().as_doc() is None


def test_negative_overrides_are_refused():
    with pytest.raises(OperatorPlanRefused):
        validate_overrides(-1, None)
