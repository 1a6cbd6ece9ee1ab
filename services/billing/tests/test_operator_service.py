"""Operator plans applied on fakes: the write carries its event and the operator's record, is
handed to files, combines with linked receipts, and the default plan reaches new accounts once."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from osmcloud_billing.lifecycle import Subscription
from osmcloud_billing.operator_plans import OperatorPlanRefused
from osmcloud_billing.operator_service import OperatorPlans
from osmcloud_billing.plans import plans_from
from osmcloud_billing.settings import BillingSettings
from osmcloud_common.events import AccountRegistered, make_event

NOW = datetime(2026, 6, 1, tzinfo=UTC)


class FakeStore:
    def __init__(self):
        self.docs: dict[str, dict] = {}
        self.orders: list[dict] = []

    async def account(self, user_id):
        return self.docs.get(user_id)

    async def orders_of(self, user_id):
        return [o for o in self.orders if o["user_id"] == user_id]

    async def transition(self, user_id, before: Subscription, after: Subscription, events, also=None, expect=None):
        doc = self.docs[user_id]
        state = (doc.get("plan"), doc.get("status", "none"), doc.get("expires_at"), doc.get("grace_until"))
        if state != (before.plan, before.status, before.expires_at, before.grace_until):
            return False
        if any(doc.get(k) != v for k, v in (expect or {}).items()):
            return False
        doc.update(plan=after.plan, status=after.status, expires_at=after.expires_at, grace_until=after.grace_until,
                   **(also or {}))
        doc.setdefault("events", []).extend(events)
        return True


class FakeRuntime:
    """The EventPublisher port (and a fixed clock), recording hand-overs."""

    def __init__(self):
        self.clock = SimpleNamespace(now=lambda: NOW)
        self.handed: list = []

    def event(self, payload, user_id):
        return {"type": payload.event_type, "payload": payload, "user_id": user_id}

    def events_written(self):
        pass

    async def hand_over(self, target, entries):
        self.handed.append((target, [e["type"] for e in entries]))
        return True


def service(default_plan="none"):
    store, rt = FakeStore(), FakeRuntime()
    store.docs["u1"] = {"_id": "u1", "plan": None, "status": "none", "expires_at": None, "grace_until": None}
    return OperatorPlans(store, rt, rt.clock, plans_from(BillingSettings()), default_plan), store, rt


async def test_grant_writes_the_event_and_the_record_and_hands_it_to_files():
    ops, store, rt = service()
    t = await ops.grant("u1", "pro", None, "operator:abc")
    assert t.event.event_type == "subscription-activated"
    assert store.docs["u1"]["operator"] == {"plan": "pro", "until": None, "at": NOW, "by": "operator:abc"}
    assert rt.handed == [("files", ["subscription-activated"])]
    await ops.revoke("u1", "operator:abc")
    assert store.docs["u1"]["status"] == "grace" and store.docs["u1"]["operator"] is None


async def test_a_linked_receipt_outlasting_the_grant_keeps_pro_after_revoke():
    ops, store, rt = service()
    store.orders.append({"user_id": "u1", "expires_at": NOW + timedelta(days=20)})
    await ops.grant("u1", "pro", NOW + timedelta(days=10), "op")
    assert store.docs["u1"]["expires_at"] == NOW + timedelta(days=20)  # the later end
    await ops.revoke("u1", "op")
    assert (store.docs["u1"]["status"], store.docs["u1"]["expires_at"]) == ("active", NOW + timedelta(days=20))


async def test_overrides_ride_on_the_write_and_the_event():
    ops, store, rt = service()
    await ops.grant("u1", "start", None, "op")
    t = await ops.set_overrides("u1", 1234, 7)
    assert t.event.event_type == "entitlement-changed" and t.event.entitlement.quota_bytes == 1234
    assert store.docs["u1"]["overrides"] == {"quota_bytes": 1234, "max_files": 7}
    grant = await ops.grant("u1", "pro", None, "op")
    assert grant.event.entitlement.quota_bytes == 1234  # every later plan event carries them
    await ops.set_overrides("u1", None, None)
    assert store.docs["u1"]["overrides"] is None


async def test_unknown_accounts_are_refused():
    ops, store, rt = service()
    with pytest.raises(OperatorPlanRefused) as info:
        await ops.grant("nobody", "pro", None, "op")
    assert info.value.code == "unknown_account"


@pytest.mark.parametrize("default_plan, expected", [("none", None), ("start", "start"), ("pro", "pro")])
async def test_the_default_plan_reaches_a_new_account_once(default_plan, expected):
    ops, store, rt = service(default_plan)
    event = make_event(AccountRegistered(email="a@example.org"), user_id="u1", producer="auth", occurred_at=NOW)
    await ops.apply_default_plan(event)
    await ops.apply_default_plan(event)  # a repeated event changes nothing
    assert store.docs["u1"]["plan"] == expected
    assert len(store.docs["u1"].get("events", [])) == (0 if expected is None else 1)
    if expected == "pro":
        assert store.docs["u1"]["expires_at"] is None and store.docs["u1"]["operator"]["by"] == "default-plan"
