"""Every plan change, whoever caused it (the user's purchase or Start, a store renewal, an
operator, the deadline job), written to billing's audit log from its own events on Kafka:
one entry per event (its id is the entry's), so a redelivery writes nothing new. An
operator's call is also recorded by the admin API with the operator and address."""

from osmcloud_common.events import (EntitlementChanged, Event, GracePeriodEnded, SubscriptionActivated,
                                    SubscriptionExpired, SubscriptionRenewed)
from osmcloud_common.runtime import Runtime

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
