"""Billing's part of the admin API (/admin/api/billing/, docs/admin-openapi.yaml): an account's
plan as billing sees it, and the operator's plan and override actions (operator_service.py).
Their refusals are domain errors (errors.py), answered through the app's one mapping
(routes.native_error)."""

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from osmcloud_common.admin import AdminApi
from osmcloud_common.errors import BadRequest
from osmcloud_common.http import json_body

from .errors import UnknownAccount
from .operator_service import OperatorPlans
from .ports import BillingStorePort
from .routes import order_view
from .store import subscription_of

MAX_QUOTA_BYTES = 1 << 50  # 1 PiB: far above any disk, below any integer trouble
MAX_FILES = 100_000_000


class PlanRequest(BaseModel):
    plan: Literal["pro", "start", "none"]
    until: datetime | None = None  # Pro's end; none: no end date


class OverridesRequest(BaseModel):
    quota_bytes: int | None = Field(default=None, ge=0, le=MAX_QUOTA_BYTES)
    max_files: int | None = Field(default=None, ge=0, le=MAX_FILES)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class BillingAdminRoutes:
    def __init__(self, store: BillingStorePort, operator_plans: OperatorPlans) -> None:
        self.store, self.ops = store, operator_plans

    def register(self, admin: AdminApi) -> None:
        admin.route("GET", "/accounts/{user_id}", self.account, action="account-viewed")
        admin.route("PUT", "/accounts/{user_id}/plan", self.plan, action="plan-set")
        admin.route("PUT", "/accounts/{user_id}/overrides", self.overrides, action="overrides-set")

    async def view(self, user_id: str) -> dict[str, Any]:
        doc = await self.store.account(user_id)
        if doc is None:
            raise UnknownAccount(f"billing knows no account '{user_id}'")
        sub = subscription_of(doc)
        operator = doc.get("operator")
        return {"user_id": user_id, "plan": sub.plan, "status": sub.view_status, "expires_at": _iso(sub.expires_at),
                "grace_until": _iso(sub.grace_until), "usage": doc.get("usage"),
                "operator_grant": {**operator, "until": _iso(operator.get("until")), "at": _iso(operator.get("at"))}
                if operator else None,
                "overrides": doc.get("overrides"),
                "orders": [order_view(o) for o in await self.store.orders_of(user_id)]}

    async def account(self, request: web.Request, operator: str) -> web.Response:
        return web.json_response(await self.view(request.match_info["user_id"]))

    async def plan(self, request: web.Request, operator: str) -> web.Response:
        user_id = request.match_info["user_id"]
        body = await json_body(request, PlanRequest)
        assert isinstance(body, PlanRequest)
        if body.until is not None and body.until.tzinfo is None:
            raise BadRequest("'until' needs a UTC offset, e.g. 2027-01-01T00:00:00+00:00")
        if body.plan == "none":
            if body.until is not None:
                raise BadRequest("revoking takes no 'until'")
            transition = await self.ops.revoke(user_id, operator)
        else:
            transition = await self.ops.grant(user_id, body.plan, body.until, operator)
        return web.json_response({**await self.view(user_id),
                                  "event": transition.event.event_type if transition.event else None})

    async def overrides(self, request: web.Request, operator: str) -> web.Response:
        user_id = request.match_info["user_id"]
        body = await json_body(request, OverridesRequest)
        assert isinstance(body, OverridesRequest)
        transition = await self.ops.set_overrides(user_id, body.quota_bytes, body.max_files)
        return web.json_response({**await self.view(user_id),
                                  "event": transition.event.event_type if transition.event else None})
