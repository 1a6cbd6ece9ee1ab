"""Billing's use cases on fakes (an in-memory store, a recording publisher, a fixed clock),
wired by the same bootstrap as app.py: plan changes through the lifecycle, each written with
its event in the account's outbox and handed over to files. No Mongo, no Kafka, no HTTP."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from osmcloud_billing.bootstrap import Billing, bootstrap
from osmcloud_billing.errors import (
    EndInPast,
    OperatorPlanRefused,
    OrderLinkedElsewhere,
    ReceiptExpired,
    ReceiptMismatch,
    StartNotAvailable,
    SubscriptionBusy,
    UnknownAccount,
    UnknownOrder,
    UnknownProduct,
)
from osmcloud_billing.lifecycle import Subscription
from osmcloud_billing.receipts import SandboxVerifier, VerifiedPurchase, sign_sandbox_receipt
from osmcloud_billing.routes import native_error
from osmcloud_billing.settings import BillingSettings
from osmcloud_common.clock import FixedClock
from osmcloud_common.events import AccountRegistered, Event, StorageUsageChanged, make_event
from osmcloud_common.outbox import decode_value
from osmcloud_common.publisher import RecordingPublisher

KEY = "k" * 32
PRODUCT = "osmcloud.pro.monthly"
START = datetime(2026, 6, 1, tzinfo=UTC)


class FakeBillingStore:
    """BillingStorePort in memory, with the same conditional writes as store.BillingStore."""

    def __init__(self) -> None:
        self.accounts: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.lose_races = 0  # the next n transitions find the state moved

    async def ensure_account(self, user_id: str, now: datetime) -> None:
        self.accounts.setdefault(user_id, {"_id": user_id, "user_id": user_id, "plan": None, "status": "none",
                                           "created_at": now, "expires_at": None, "grace_until": None,
                                           "usage": None, "_outbox": []})

    async def account(self, user_id: str) -> dict[str, Any] | None:
        doc = self.accounts.get(user_id)
        return None if doc is None else {k: v for k, v in doc.items() if k != "_outbox"}

    async def transition(self, user_id: str, before: Subscription, after: Subscription,
                         events: list[dict[str, Any]], also: dict[str, Any] | None = None,
                         expect: dict[str, Any] | None = None) -> bool:
        doc = self.accounts.get(user_id)
        if self.lose_races:
            self.lose_races -= 1
            return False
        if doc is None or (doc["plan"], doc["status"], doc["expires_at"], doc["grace_until"]) != \
                (before.plan, before.status, before.expires_at, before.grace_until):
            return False
        if any(doc.get(k) != v for k, v in (expect or {}).items()):
            return False
        doc.update(plan=after.plan, status=after.status, expires_at=after.expires_at, grace_until=after.grace_until,
                   **(also or {}))
        doc["_outbox"] += events
        return True

    async def due(self, now: datetime, limit: int = 100) -> list[dict[str, Any]]:
        return [d for d in self.accounts.values() if d["plan"] == "pro" and (
            (d["status"] == "active" and d["expires_at"] <= now) or
            (d["status"] == "grace" and d["grace_until"] <= now))][:limit]

    async def link_order(self, user_id: str, purchase: VerifiedPurchase, now: datetime) -> dict[str, Any]:
        key = f"{purchase.platform}:{purchase.order_id}"
        order = self.orders.setdefault(key, {"_id": key, "user_id": user_id, "platform": purchase.platform,
                                             "order_id": purchase.order_id, "product_id": purchase.product_id,
                                             "linked_at": now, "expires_at": purchase.expires_at})
        if order["user_id"] != user_id:
            raise OrderLinkedElsewhere()
        order["expires_at"] = max(order["expires_at"], purchase.expires_at)
        return order

    async def order(self, platform: str, order_id: str) -> dict[str, Any] | None:
        return self.orders.get(f"{platform}:{order_id}")

    async def orders_by_order_id(self, order_id: str) -> list[dict[str, Any]]:
        return [o for o in self.orders.values() if o["order_id"] == order_id]

    async def orders_of(self, user_id: str) -> list[dict[str, Any]]:
        return [o for o in self.orders.values() if o["user_id"] == user_id]

    async def record_usage(self, user_id: str, sequence: int, usage: dict[str, Any]) -> bool:
        doc = self.accounts.get(user_id)
        if doc is None or (doc["usage"] is not None and doc["usage"]["sequence"] >= sequence):
            return False
        doc["usage"] = {"sequence": sequence, **usage}
        return True

    def outbox(self, user_id: str) -> list[str]:
        return [decode_value(e).type for e in self.accounts[user_id]["_outbox"]]


class World:
    def __init__(self, default_plan: str = "none") -> None:
        self.clock = FixedClock(START)
        self.store = FakeBillingStore()
        self.publisher = RecordingPublisher(self.clock, producer="billing")
        settings = BillingSettings(sandbox_store=True, sandbox_receipt_key=KEY, default_plan=default_plan)
        self.billing: Billing = bootstrap(settings, store=self.store, publisher=self.publisher, clock=self.clock,
                                          verifier=SandboxVerifier(KEY))

    def receipt(self, order_id: str = "o1", days: int = 30, product: str = PRODUCT) -> str:
        return sign_sandbox_receipt(KEY, platform="sandbox", order_id=order_id, product_id=product,
                                    purchased_at=self.clock.now() - timedelta(days=400),
                                    expires_at=self.clock.now() + timedelta(days=days))

    async def buy(self, user_id: str, order_id: str = "o1", days: int = 30) -> Any:
        return await self.billing.subscriptions.purchase(user_id, "sandbox", PRODUCT, order_id,
                                                         self.receipt(order_id, days))

    def handed(self) -> list[str]:
        return [decode_value(e).type for target, entries in self.publisher.handed for e in entries
                if target == "files"]


@pytest.fixture
def world() -> World:
    return World()


async def test_start_is_written_with_its_event_and_handed_to_files_once(world: World) -> None:
    first = await world.billing.subscriptions.activate_start("u1")
    again = await world.billing.subscriptions.activate_start("u1")
    assert first.after == Subscription(plan="start", status="active") and again.event is None
    assert world.store.outbox("u1") == ["subscription-activated"] == world.handed()
    assert world.publisher.wakes  # the relay was woken for the written event


async def test_purchase_activates_renews_and_a_repeated_receipt_writes_nothing(world: World) -> None:
    await world.billing.subscriptions.activate_start("u1")
    await world.buy("u1", "o1", days=30)
    receipt = world.receipt("o1", 60)
    await world.billing.subscriptions.purchase("u1", "sandbox", PRODUCT, "o1", receipt)
    repeated = await world.billing.subscriptions.purchase("u1", "sandbox", PRODUCT, "o1", receipt)
    assert repeated.event is None
    assert world.store.outbox("u1") == ["subscription-activated", "subscription-activated", "subscription-renewed"]
    assert world.store.accounts["u1"]["expires_at"] == START + timedelta(days=60)
    assert world.store.orders["sandbox:o1"]["expires_at"] == START + timedelta(days=60)


async def test_an_order_belongs_to_one_account(world: World) -> None:
    await world.buy("u1", "o1")
    with pytest.raises(OrderLinkedElsewhere):
        await world.buy("u2", "o1")
    assert world.store.outbox("u2") == []


async def test_refused_purchases_change_nothing(world: World) -> None:
    subs = world.billing.subscriptions
    with pytest.raises(UnknownProduct):
        await subs.purchase("u1", "sandbox", "some.other", "o1", world.receipt())
    with pytest.raises(ReceiptMismatch):
        await subs.purchase("u1", "sandbox", PRODUCT, "o2", world.receipt("o1"))
    with pytest.raises(ReceiptExpired):
        await subs.purchase("u1", "sandbox", PRODUCT, "o1", world.receipt(days=-1))
    assert world.store.accounts == {} and world.store.orders == {} and world.publisher.created == []


async def test_start_is_refused_while_pro_is_active(world: World) -> None:
    await world.buy("u1")
    with pytest.raises(StartNotAvailable):
        await world.billing.subscriptions.activate_start("u1")


async def test_expiry_then_grace_end_through_the_deadline_job_and_a_rerun_changes_nothing(world: World) -> None:
    await world.buy("u1", days=30)
    job = world.billing.deadlines
    assert await job.run_once() == 0
    world.clock.advance(timedelta(days=30))
    assert await job.run_once() == 1 and await job.run_once() == 0
    assert world.store.accounts["u1"]["status"] == "grace"
    world.clock.advance(timedelta(days=365))
    assert await job.run_once() == 1 and await job.run_once() == 0
    assert world.store.outbox("u1") == ["subscription-activated", "subscription-expired", "grace-period-ended"]
    # a renewal after the grace year brings Pro back
    await world.buy("u1", "o2")
    assert world.store.accounts["u1"]["status"] == "active"


async def test_store_notification_renews_a_linked_order_only(world: World) -> None:
    with pytest.raises(UnknownOrder):
        await world.billing.subscriptions.store_notification("sandbox", world.receipt("o1"))
    await world.buy("u1", "o1", days=30)
    renewed = await world.billing.subscriptions.store_notification("sandbox", world.receipt("o1", 90))
    assert renewed.event is not None and renewed.event.event_type == "subscription-renewed"


async def test_a_decision_that_keeps_losing_races_is_refused_as_busy(world: World) -> None:
    await world.store.ensure_account("u1", START)
    world.store.lose_races = 5
    with pytest.raises(SubscriptionBusy):
        await world.billing.subscriptions.activate_start("u1")
    world.store.lose_races = 4
    assert (await world.billing.subscriptions.activate_start("u1")).event is not None


async def test_osmand_orderid_goes_through_the_same_purchase_path(world: World) -> None:
    orders = world.billing.orders
    token = world.receipt("o9", 30)
    assert (await orders.decide(token, None, link=False)).outcome == "valid"
    assert (await orders.decide(token, "u1", link=True)).outcome == "linked"
    assert world.store.outbox("u1") == ["subscription-activated"] == world.handed()
    assert (await orders.decide(token, "u2", link=True)).outcome == "other_account"
    assert (await orders.decide("o9", "u1", link=False)).outcome == "linked"  # the bare order id
    assert (await orders.decide("o9", "u2", link=False)).outcome == "other_account"
    assert (await orders.decide("nope", "u1", link=False)).outcome == "unknown"
    world.clock.advance(timedelta(days=31))
    assert (await orders.decide(token, "u1", link=True)).outcome == "expired"


def _registered(user_id: str, via: str | None) -> Event:
    payload = AccountRegistered(email="a@example.org", via=via) if via else AccountRegistered(email="a@example.org")
    return make_event(payload, user_id=user_id, producer="auth", occurred_at=START)


async def test_an_osmand_sign_up_gets_start_once_and_a_native_one_no_plan(world: World) -> None:
    handlers = world.billing.handlers
    for _ in range(2):  # at least once delivery
        await handlers.account_registered(_registered("u1", "osmand"))
        await handlers.account_registered(_registered("u2", None))
    assert world.store.outbox("u1") == ["subscription-activated"] and world.store.outbox("u2") == []
    assert world.store.accounts["u2"]["plan"] is None


async def test_usage_batches_keep_each_accounts_newest_figures(world: World) -> None:
    def usage(user_id: str, sequence: int, used: int) -> Event:
        return make_event(StorageUsageChanged(used_bytes=used, file_count=1, sequence=sequence), user_id=user_id,
                          producer="files", occurred_at=START)
    await world.billing.handlers.usage_changed([usage("u1", 2, 20), usage("u1", 1, 10), usage("u2", 1, 5)])
    await world.billing.handlers.usage_changed([usage("u1", 1, 10)])  # older, redelivered
    assert world.store.accounts["u1"]["usage"] == {"sequence": 2, "used_bytes": 20, "file_count": 1}
    assert world.store.accounts["u2"]["usage"]["used_bytes"] == 5


def test_domain_errors_answer_as_the_api_always_did() -> None:
    answer = native_error(StartNotAvailable("the Start plan is not available: this account has Pro (active)"))
    assert (answer.status, answer.body()) == (409, {"error": {
        "code": "start_not_available", "message": "the Start plan is not available: this account has Pro (active)"}})
    assert (native_error(UnknownOrder("x")).status, native_error(UnknownOrder("x")).code) == (404, "unknown_order")
    assert native_error(OrderLinkedElsewhere()).body()["error"] == {
        "code": "order_linked_elsewhere", "message": "this order is already linked to another account"}


def _entitlements(world: World, user_id: str) -> list[tuple[str, int, int]]:
    """(event, quota, max files) of each event in the account's outbox."""
    events = [decode_value(e) for e in world.store.accounts[user_id]["_outbox"]]
    return [(e.type, e.data["entitlement"]["quota_bytes"], e.data["entitlement"]["max_files"]) for e in events]


@pytest.mark.parametrize("default_plan, plan", [("none", "start"), ("start", "start"), ("pro", "pro")])
async def test_the_default_plan_comes_before_an_osmand_sign_ups_start(default_plan: str, plan: str) -> None:
    world = World(default_plan)
    for _ in range(2):  # at least once delivery
        await world.billing.handlers.account_registered(_registered("u1", "osmand"))
    assert world.store.outbox("u1") == ["subscription-activated"] == world.handed()
    assert world.store.accounts["u1"]["plan"] == plan
    assert (world.store.accounts["u1"].get("operator") or {}).get("by") == (None if default_plan == "none"
                                                                          else "default-plan")


async def test_a_users_own_plan_changes_carry_the_operators_overrides(world: World) -> None:
    await world.store.ensure_account("u1", START)
    operators = world.billing.operators
    assert (await operators.set_overrides("u1", 1234, 7)).event is None  # no plan yet: nothing to send
    await world.billing.subscriptions.activate_start("u1")
    await world.buy("u1", days=30)
    world.clock.advance(timedelta(days=30))
    assert await world.billing.deadlines.run_once() == 1
    assert [(kind, files) for kind, _, files in _entitlements(world, "u1")] == [
        ("subscription-activated", 7), ("subscription-activated", 7), ("subscription-expired", 7)]
    assert {quota for _, quota, _ in _entitlements(world, "u1")} == {1234}


async def test_the_deadline_job_does_not_expire_on_overrides_changed_under_it(world: World) -> None:
    await world.buy("u1", days=30)
    world.clock.advance(timedelta(days=30))
    due = await world.store.due(world.clock.now())
    stale = [dict(d) for d in due]

    async def due_before_the_override(now: datetime, limit: int = 100) -> list[dict[str, Any]]:
        return stale
    world.store.due = due_before_the_override  # type: ignore[method-assign]
    world.store.accounts["u1"]["overrides"] = {"quota_bytes": 1, "max_files": 1}  # an operator, meanwhile
    assert await world.billing.deadlines.run_once() == 0  # computed without them: not written
    assert world.store.accounts["u1"]["status"] == "active"


async def test_operator_refusals_are_domain_errors_with_the_admin_apis_answers(world: World) -> None:
    operators = world.billing.operators
    with pytest.raises(UnknownAccount):
        await operators.grant("nobody", "pro", None, "op")
    await world.store.ensure_account("u1", START)
    with pytest.raises(EndInPast):
        await operators.grant("u1", "pro", START - timedelta(days=1), "op")
    with pytest.raises(OperatorPlanRefused) as refused:
        await operators.grant("u1", "start", START + timedelta(days=1), "op")
    world.store.lose_races = 5
    with pytest.raises(SubscriptionBusy):
        await operators.grant("u1", "pro", None, "op")
    assert world.store.outbox("u1") == []
    answers = [(native_error(e).status, native_error(e).code) for e in (
        UnknownAccount("x"), EndInPast("x"), refused.value, SubscriptionBusy("x"))]
    assert answers == [(404, "unknown_account"), (409, "end_in_past"), (400, "bad_plan"), (409, "busy")]
