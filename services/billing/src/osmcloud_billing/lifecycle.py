"""The subscription state machine, free of I/O.

    none ──start──> start/active
    none|start|expired ──purchase──> pro/active        (subscription-activated)
    pro/active|grace ──later receipt──> pro/active      (subscription-renewed)
    pro/active ──expires_at passes──> pro/grace         (subscription-expired, grace_until = expiry + 1 year)
    pro/grace ──grace_until passes──> pro/expired       (grace-period-ended)

An operator's grants and revocations (operator_plans.py) move along the same states; a Pro
without an end date (expires_at None) has no deadline and no receipt shortens it.

During grace and after it, uploads follow Start rules; listing, downloading, restoring and
deleting keep working. Renewal at any point restores Pro."""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from osmcloud_common.events import (
    Entitlement,
    GracePeriodEnded,
    Payload,
    SubscriptionActivated,
    SubscriptionExpired,
    SubscriptionRenewed,
)

from .errors import ReceiptExpired, StartNotAvailable
from .receipts import VerifiedPurchase


@dataclass(frozen=True)
class Subscription:
    plan: str | None = None           # None, "start" or "pro"
    status: str = "none"              # "none", "active", "grace", "expired"
    expires_at: datetime | None = None
    grace_until: datetime | None = None

    @property
    def view_status(self) -> str:
        return {"grace": "in_grace"}.get(self.status, self.status)


@dataclass(frozen=True)
class Plans:
    start: Entitlement
    pro: Entitlement
    grace: timedelta


@dataclass(frozen=True)
class Transition:
    after: Subscription
    event: Payload | None  # None: nothing changed (a repeated receipt, say)


def activate_start(sub: Subscription, plans: Plans) -> Transition:
    if sub.plan == "pro" and sub.status in ("active", "grace"):
        state = "active" if sub.status == "active" else "in its grace period"
        raise StartNotAvailable(f"the Start plan is not available: this account has Pro ({state})")
    if sub.plan == "start" or sub.status == "expired":
        return Transition(sub, None)  # already on Start rules
    return Transition(Subscription(plan="start", status="active"),
                      SubscriptionActivated(entitlement=plans.start))


def apply_purchase(sub: Subscription, purchase: VerifiedPurchase, now: datetime, plans: Plans) -> Transition:
    if purchase.expires_at <= now:
        raise ReceiptExpired("the receipt has already expired; renew the subscription in the store")
    if sub.plan == "pro" and sub.status == "active" and sub.expires_at is None:
        return Transition(sub, None)  # an operator's Pro without an end date outlasts any receipt
    if sub.plan == "pro" and sub.status in ("active", "grace"):
        if sub.expires_at is not None and purchase.expires_at <= sub.expires_at:
            return Transition(sub, None)
        after = Subscription(plan="pro", status="active", expires_at=purchase.expires_at)
        return Transition(after, SubscriptionRenewed(entitlement=plans.pro, expires_at=purchase.expires_at))
    after = Subscription(plan="pro", status="active", expires_at=purchase.expires_at)
    return Transition(after, SubscriptionActivated(entitlement=plans.pro, expires_at=purchase.expires_at))


def grace_entitlement(plans: Plans, grace_until: datetime) -> Entitlement:
    """Uploads follow Start; what Pro stored stays, restorable and within Pro's storage bound."""
    return plans.start.model_copy(update={"grace_until": grace_until, "grace_quota_bytes": plans.pro.quota_bytes,
                                          "storage_limit_bytes": plans.pro.storage_limit})


def expire(sub: Subscription, at: datetime, plans: Plans) -> Transition:
    """An active Pro that ends `at`: the grace year starts there."""
    grace_until = at + plans.grace
    return Transition(replace(sub, status="grace", expires_at=at, grace_until=grace_until),
                      SubscriptionExpired(entitlement=grace_entitlement(plans, grace_until), grace_until=grace_until))


def due_transition(sub: Subscription, now: datetime, plans: Plans) -> Transition | None:
    """The deadline that has passed, if any: expiry, then the end of grace."""
    if sub.plan == "pro" and sub.status == "active" and sub.expires_at and sub.expires_at <= now:
        return expire(sub, sub.expires_at, plans)
    if sub.plan == "pro" and sub.status == "grace" and sub.grace_until and sub.grace_until <= now:
        return Transition(replace(sub, status="expired"), GracePeriodEnded(entitlement=plans.start))
    return None
