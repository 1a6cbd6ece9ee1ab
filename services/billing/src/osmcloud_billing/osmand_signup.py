"""Accounts that sign up through OsmAnd's /userdata/ API: the app never asks for a plan, so
billing gives them what the reference gives a registered account without a subscription —
the Start allowance, activated exactly as POST /api/billing/start does (subscription-activated
through the outbox). Idempotent: Start is only activated on an account without a plan, so a
repeated `account-registered` changes nothing, and an account that already has Pro keeps it."""

from osmcloud_common.events import AccountRegistered, Event, SubscriptionActivated
from osmcloud_common.runtime import Runtime

from .plans import start_entitlement
from .settings import BillingSettings
from .store import BillingStore

VIA_OSMAND = "osmand"


async def activate_start_if_osmand(runtime: Runtime, store: BillingStore, settings: BillingSettings,
                                   event: Event) -> None:
    payload: AccountRegistered = event.payload()
    if payload.via != VIA_OSMAND:
        return
    activated = runtime.event(SubscriptionActivated(entitlement=start_entitlement(settings)), event.user_id)
    if await store.activate_start(event.user_id, event.occurred_at, [activated]):
        runtime.events_written()
