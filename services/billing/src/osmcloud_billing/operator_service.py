"""The operator's plan actions as billing applies them (operator_plans.py decides; this reads
the account and its orders and writes the change with its event, plan_changes.py), and the
deployment's default plan for new accounts (DEFAULT_PLAN)."""

from datetime import datetime

from osmcloud_common.events import AccountRegistered, Event
from osmcloud_common.runtime import Runtime

from .lifecycle import Plans, Transition
from .operator_plans import OperatorPlanRefused, grant_pro, grant_start, revoke, set_overrides, validate_overrides
from .plan_changes import change_plan
from .store import BillingStore

DEFAULT_PLAN_ACTOR = "default-plan"


class OperatorPlans:
    def __init__(self, runtime: Runtime, store: BillingStore, plans: Plans, default_plan: str) -> None:
        self.rt, self.store, self.plans, self.default_plan = runtime, store, plans, default_plan

    async def _existing(self, user_id: str) -> dict:
        doc = await self.store.account(user_id)
        if doc is None:
            raise OperatorPlanRefused(f"billing knows no account '{user_id}'", "unknown_account")
        return doc

    async def store_until(self, user_id: str) -> datetime | None:
        """The latest expiry among the account's linked store orders (None: no order)."""
        ends = [o["expires_at"] for o in await self.store.orders_of(user_id) if o.get("expires_at")]
        return max(ends) if ends else None

    async def grant(self, user_id: str, plan: str, until: datetime | None, by: str) -> Transition:
        await self._existing(user_id)
        now, store_until = self.rt.clock.now(), await self.store_until(user_id)
        if plan == "pro":
            record = {"plan": "pro", "until": until, "at": now, "by": by}
            return await change_plan(self.rt, self.store, self.plans, user_id,
                                     lambda sub, plans: grant_pro(sub, until, store_until, now, plans),
                                     also={"operator": record})
        if until is not None:
            raise OperatorPlanRefused("Start has no end date; leave 'until' out", "bad_plan")
        return await change_plan(self.rt, self.store, self.plans, user_id,
                                 lambda sub, plans: grant_start(sub, store_until, now, plans),
                                 also={"operator": {"plan": "start", "until": None, "at": now, "by": by}})

    async def revoke(self, user_id: str, by: str) -> Transition:
        await self._existing(user_id)
        now, store_until = self.rt.clock.now(), await self.store_until(user_id)
        return await change_plan(self.rt, self.store, self.plans, user_id,
                                 lambda sub, plans: revoke(sub, store_until, now, plans), also={"operator": None})

    async def set_overrides(self, user_id: str, quota_bytes: int | None, max_files: int | None) -> Transition:
        await self._existing(user_id)
        overrides = validate_overrides(quota_bytes, max_files)
        return await change_plan(self.rt, self.store, self.plans, user_id,
                                 lambda sub, plans: set_overrides(sub, plans), overrides=overrides)

    async def apply_default_plan(self, event: Event) -> None:
        """On account-registered: the deployment's default plan (none: the user chooses)."""
        if self.default_plan == "none" or not isinstance(event.payload(), AccountRegistered):
            return
        doc = await self.store.account(event.user_id)
        if doc is None or doc.get("plan") is not None:
            return  # a plan was given already (a repeated event, an operator, a purchase)
        await self.grant(event.user_id, self.default_plan, None, DEFAULT_PLAN_ACTOR)
