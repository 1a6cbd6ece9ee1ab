"""Plans an operator gives, free of I/O: the same states and events as store plans
(lifecycle.py), so files, the deadline job and the grace year treat them alike.

How an operator's grant and store receipts combine (docs/operators.md): the later end wins.
- grant Pro until T: Pro until the later of T and the newest linked receipt's expiry;
  without an end date: Pro with no deadline, which no receipt shortens.
- revoke: ends what the operator granted. A receipt still running keeps Pro until its end;
  otherwise Pro expires now and the grace year starts (uploads follow Start at once, what is
  stored stays readable for a year, then what lies beyond Start goes to the trash).
- grant Start: an account without a plan gets Start; one with an operator's Pro is revoked
  (grace as above); a paid store subscription is the user's and runs to its end.
- overrides: a per-account quota and/or file count replaces the plan's, whatever the plan
  (Start, Pro, grace); the storage bound follows the quota (STORAGE_FACTOR x quota). Every
  entitlement billing sends for the account carries them (plans_for)."""

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from osmcloud_common.events import (
    STORAGE_FACTOR,
    Entitlement,
    EntitlementChanged,
    SubscriptionActivated,
    SubscriptionRenewed,
)

from .errors import EndInPast, OperatorPlanRefused
from .lifecycle import Plans, Subscription, Transition, activate_start, expire, grace_entitlement


@dataclass(frozen=True)
class Overrides:
    quota_bytes: int | None = None
    max_files: int | None = None

    def as_doc(self) -> dict[str, int | None] | None:
        if self.quota_bytes is None and self.max_files is None:
            return None
        return {"quota_bytes": self.quota_bytes, "max_files": self.max_files}

    @classmethod
    def of(cls, doc: dict[str, Any] | None) -> "Overrides":
        o = (doc or {}).get("overrides") or {}
        return cls(quota_bytes=o.get("quota_bytes"), max_files=o.get("max_files"))


def overrides_of(doc: dict[str, Any] | None) -> dict[str, Any]:
    """The condition that the account still has the overrides an event was computed with."""
    return {"overrides": Overrides.of(doc).as_doc()}


def _overridden(entitlement: Entitlement, o: Overrides) -> Entitlement:
    update: dict[str, Any] = {}
    if o.quota_bytes is not None:
        update.update(quota_bytes=o.quota_bytes, storage_limit_bytes=STORAGE_FACTOR * o.quota_bytes)
    if o.max_files is not None:
        update["max_files"] = o.max_files
    return entitlement.model_copy(update=update) if update else entitlement


def plans_for(plans: Plans, doc: dict[str, Any] | None) -> Plans:
    """The deployment's plans with the account's overrides applied."""
    o = Overrides.of(doc)
    if o.as_doc() is None:
        return plans
    return replace(plans, start=_overridden(plans.start, o), pro=_overridden(plans.pro, o))


def grant_pro(sub: Subscription, until: datetime | None, store_until: datetime | None, now: datetime,
              plans: Plans) -> Transition:
    if until is not None and until <= now:
        raise EndInPast(f"the end date {until.isoformat()} has passed; give a later one or none")
    effective = None if until is None else max(until, store_until) if store_until else until
    if sub.plan == "pro" and sub.status == "active" and sub.expires_at == effective:
        return Transition(sub, None)
    after = Subscription(plan="pro", status="active", expires_at=effective)
    event = SubscriptionRenewed if sub.plan == "pro" and sub.status in ("active", "grace") else SubscriptionActivated
    return Transition(after, event(entitlement=plans.pro, expires_at=effective))


def revoke(sub: Subscription, store_until: datetime | None, now: datetime, plans: Plans) -> Transition:
    if not (sub.plan == "pro" and sub.status == "active"):
        return Transition(sub, None)  # no Pro to end (already in grace, on Start or none)
    if store_until is not None and store_until > now:
        if sub.expires_at == store_until:
            return Transition(sub, None)
        after = replace(sub, expires_at=store_until)
        return Transition(after, SubscriptionRenewed(entitlement=plans.pro, expires_at=store_until))
    return expire(sub, now, plans)


def grant_start(sub: Subscription, store_until: datetime | None, now: datetime, plans: Plans) -> Transition:
    if sub.plan == "pro" and sub.status == "active":
        return revoke(sub, store_until, now, plans)
    if sub.plan == "pro" and sub.status == "grace":
        return Transition(sub, None)  # uploads follow Start already; the grace year runs on
    return activate_start(sub, plans)


def current_entitlement(sub: Subscription, plans: Plans) -> Entitlement | None:
    """What files should hold for an account in `sub` (None: no plan yet)."""
    if sub.plan == "pro" and sub.status == "active":
        return plans.pro
    if sub.plan == "pro" and sub.status == "grace" and sub.grace_until is not None:
        return grace_entitlement(plans, sub.grace_until)
    if sub.plan is not None:
        return plans.start
    return None


def set_overrides(sub: Subscription, plans_with_new: Plans) -> Transition:
    """The plan stays; the entitlement files holds changes (None event: no plan yet, the
    overrides ride on the first plan event)."""
    entitlement = current_entitlement(sub, plans_with_new)
    return Transition(sub, EntitlementChanged(entitlement=entitlement) if entitlement else None)


def validate_overrides(quota_bytes: int | None, max_files: int | None) -> Overrides:
    if quota_bytes is not None and quota_bytes < 0:
        raise OperatorPlanRefused("quota_bytes must be 0 or more (null clears the override)", code="bad_override")
    if max_files is not None and max_files < 0:
        raise OperatorPlanRefused("max_files must be 0 or more (null clears the override)", code="bad_override")
    return Overrides(quota_bytes=quota_bytes, max_files=max_files)
