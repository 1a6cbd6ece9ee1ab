"""Every plan change, whoever caused it (the user's purchase or Start, a store renewal, an
operator, the deadline job), written to billing's audit log from its own events on Kafka:
one entry per event (its id is the entry's), so a redelivery writes nothing new. Who asked
and from where is recorded as the request is answered: a user's Start or purchase by the
middleware below (`plan-requested`), an operator's call by the admin API (`plan-set`)."""

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from osmcloud_common.admin import client_address
from osmcloud_common.domain_errors import DomainError
from osmcloud_common.errors import ApiError
from osmcloud_common.events import (
    EntitlementChanged,
    Event,
    GracePeriodEnded,
    SubscriptionActivated,
    SubscriptionExpired,
    SubscriptionRenewed,
)
from osmcloud_common.runtime import Runtime

# a user's own plan requests: (method, route) -> what was asked
PLAN_REQUESTS = {("POST", "/api/billing/start"): "start", ("POST", "/api/billing/purchases"): "purchase"}

PLAN_EVENTS = (SubscriptionActivated, SubscriptionRenewed, SubscriptionExpired, GracePeriodEnded, EntitlementChanged)


def register_plan_audit(runtime: Runtime) -> None:
    async def plan_changed(event: Event) -> None:
        entitlement = event.data.get("entitlement") or {}
        await runtime.audit.record(
            "plan-changed", actor=event.producer, user_id=event.user_id, entry_id=f"event:{event.id}",
            detail={"event": event.type, "plan": entitlement.get("plan"), "expires_at": event.data.get("expires_at"),
                    "grace_until": event.data.get("grace_until"), "quota_bytes": entitlement.get("quota_bytes"),
                    "max_files": entitlement.get("max_files")})

    for payload_type in PLAN_EVENTS:
        runtime.on_event(payload_type, plan_changed)


def plan_request_middleware(runtime: Runtime) -> Middleware:
    @web.middleware
    async def audit(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        asked = PLAN_REQUESTS.get((request.method, resource.canonical if resource else ""))
        if asked is None:
            return await handler(request)
        user_id = request.headers.get("X-User-Id") or None
        outcome = "ok"
        try:
            return await handler(request)
        except (ApiError, DomainError) as exc:  # a domain error is mapped to its answer outside
            outcome = exc.code
            raise
        finally:
            await runtime.audit.record("plan-requested", actor=user_id or "anonymous", user_id=user_id,
                                       address=client_address(request), outcome=outcome, detail={"asked": asked})
    return audit
