"""Applies one plan change: decides on the account's current state (with its overrides) and
writes the new state with its event in one conditional update, retried if the state moved;
then hands the event to files, whose copy of the plan the client's next upload is judged on
(read-your-writes, docs/adr/0004-read-your-writes.md). Used by the user's use cases
(subscriptions.py) and the operator's (operator_service.py) alike."""

from collections.abc import Callable
from typing import Any

from osmcloud_common.publisher import EventPublisher

from .errors import SubscriptionBusy
from .lifecycle import Plans, Subscription, Transition
from .operator_plans import Overrides, overrides_of, plans_for
from .ports import BillingStorePort
from .store import subscription_of

Decide = Callable[[Subscription, Plans], Transition]
ATTEMPTS = 5  # decisions retried when the state moved under them


async def change_plan(store: BillingStorePort, publisher: EventPublisher, plans: Plans, user_id: str,
                      decide: Decide, *, also: dict[str, Any] | None = None,
                      overrides: Overrides | None = None) -> Transition:
    """`decide(sub, plans)` gets the deployment's plans with the account's overrides. `also`:
    fields written with the change (an operator's record); `overrides`: the account's new
    overrides, written with the change and used to decide it. SubscriptionBusy if the state
    kept moving."""
    for _ in range(ATTEMPTS):
        doc = await store.account(user_id) or {}
        before = subscription_of(doc)
        extra = dict(also or {})
        if overrides is not None:
            extra["overrides"] = overrides.as_doc()
        transition = decide(before, plans_for(plans, extra if overrides is not None else doc))
        if transition.event is None and not extra:
            return transition
        entries = [publisher.event(transition.event, user_id)] if transition.event else []
        if await store.transition(user_id, before, transition.after, entries, also=extra, expect=overrides_of(doc)):
            if entries:
                publisher.events_written()
                # the client's next upload is judged on files' copy of the plan: it has it first
                await publisher.hand_over("files", entries)
            return transition
        if not entries and await _unchanged(store, user_id, before, extra):
            return transition  # the fields were already so: nothing to write
    raise SubscriptionBusy("the subscription changed meanwhile; try again")


async def _unchanged(store: BillingStorePort, user_id: str, before: Subscription, extra: dict[str, Any]) -> bool:
    doc = await store.account(user_id) or {}
    return subscription_of(doc) == before and all(doc.get(k) == v for k, v in extra.items())
