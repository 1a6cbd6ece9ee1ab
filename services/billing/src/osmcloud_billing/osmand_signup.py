"""Accounts that sign up through OsmAnd's /userdata/ API: the app never asks for a plan, so
billing gives them what the reference gives a registered account without a subscription —
the Start allowance, activated exactly as POST /api/billing/start does (subscription-activated
through the outbox). Idempotent: Start is only activated on an account without a plan, so a
repeated `account-registered` changes nothing, and an account that already has Pro keeps it."""

from osmcloud_common.events import AccountRegistered, Event
from osmcloud_common.runtime import Runtime

from .lifecycle import activate_start
from .plans import plans_from
from .settings import BillingSettings
from .store import BillingStore, subscription_of

VIA_OSMAND = "osmand"


async def activate_start_if_osmand(runtime: Runtime, store: BillingStore, settings: BillingSettings,
                                   event: Event) -> None:
    payload: AccountRegistered = event.payload()
    if payload.via != VIA_OSMAND:
        return
    before = subscription_of(await store.account(event.user_id))
    if before.plan is not None:
        return
    transition = activate_start(before, plans_from(settings))
    entry = runtime.event(transition.event, event.user_id)
    if await store.transition(event.user_id, before, transition.after, [entry]):
        runtime.events_written()
        # the app uploads right after signing up: files knows the plan before the sign-up answers
        await runtime.hand_over("files", [entry])
