"""The operator's plan actions as billing applies them (operator_plans.py decides; this reads
the account and its orders and writes the change with its event, plan_changes.py), and the
deployment's default plan for new accounts (DEFAULT_PLAN). Refusals are domain errors
(errors.py); the admin routes' mapping is routes.native_error."""

from datetime import datetime
from typing import Any

from osmcloud_common.clock import Clock
from osmcloud_common.events import AccountRegistered, Event
from osmcloud_common.publisher import EventPublisher

from .errors import OperatorPlanRefused, UnknownAccount
from .lifecycle import Plans, Transition
from .operator_plans import grant_pro, grant_start, revoke, set_overrides, validate_overrides
from .plan_changes import Decide, change_plan
from .ports import BillingStorePort

DEFAULT_PLAN_ACTOR = "default-plan"


class OperatorPlans:
    def __init__(self, store: BillingStorePort, publisher: EventPublisher, clock: Clock, plans: Plans,
                 default_plan: str) -> None:
        self.store, self.publisher, self.clock, self.plans = store, publisher, clock, plans
        self.default_plan = default_plan

    async def _existing(self, user_id: str) -> dict[str, Any]:
        doc = await self.store.account(user_id)
        if doc is None:
            raise UnknownAccount(f"billing knows no account '{user_id}'")
        return doc

    async def store_until(self, user_id: str) -> datetime | None:
        """The latest expiry among the account's linked store orders (None: no order)."""
        ends = [o["expires_at"] for o in await self.store.orders_of(user_id) if o.get("expires_at")]
        return max(ends) if ends else None

    async def _change(self, user_id: str, decide: Decide, **kwargs: Any) -> Transition:
        return await change_plan(self.store, self.publisher, self.plans, user_id, decide, **kwargs)

    async def grant(self, user_id: str, plan: str, until: datetime | None, by: str) -> Transition:
        await self._existing(user_id)
        now, store_until = self.clock.now(), await self.store_until(user_id)
        if plan == "pro":
            record = {"plan": "pro", "until": until, "at": now, "by": by}
            return await self._change(user_id, lambda sub, plans: grant_pro(sub, until, store_until, now, plans),
                                      also={"operator": record})
        if until is not None:
            raise OperatorPlanRefused("Start has no end date; leave 'until' out", code="bad_plan")
        return await self._change(user_id, lambda sub, plans: grant_start(sub, store_until, now, plans),
                                  also={"operator": {"plan": "start", "until": None, "at": now, "by": by}})

    async def revoke(self, user_id: str, by: str) -> Transition:
        await self._existing(user_id)
        now, store_until = self.clock.now(), await self.store_until(user_id)
        return await self._change(user_id, lambda sub, plans: revoke(sub, store_until, now, plans),
                                  also={"operator": None})

    async def set_overrides(self, user_id: str, quota_bytes: int | None, max_files: int | None) -> Transition:
        await self._existing(user_id)
        overrides = validate_overrides(quota_bytes, max_files)
        return await self._change(user_id, lambda sub, plans: set_overrides(sub, plans), overrides=overrides)

    async def apply_default_plan(self, event: Event) -> None:
        """On account-registered: the deployment's default plan (none: the user chooses)."""
        if self.default_plan == "none" or not isinstance(event.payload(), AccountRegistered):
            return
        doc = await self.store.account(event.user_id)
        if doc is None or doc.get("plan") is not None:
            return  # a plan was given already (a repeated event, an operator, a purchase)
        await self.grant(event.user_id, self.default_plan, None, DEFAULT_PLAN_ACTOR)
