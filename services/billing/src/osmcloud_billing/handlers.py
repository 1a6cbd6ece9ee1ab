"""How billing reacts to events. Every handler is idempotent; the composition root (app.py)
subscribes them."""

from collections.abc import Awaitable, Callable

from osmcloud_common.events import Event, StorageUsageChanged

from .ports import BillingStorePort
from .subscriptions import Subscriptions


class Handlers:
    def __init__(self, store: BillingStorePort, subscriptions: Subscriptions,
                 default_plan: Callable[[Event], Awaitable[None]] | None = None) -> None:
        self.store, self.subscriptions, self.default_plan = store, subscriptions, default_plan

    async def account_registered(self, event: Event) -> None:
        await self.store.ensure_account(event.user_id, event.occurred_at)
        if self.default_plan is not None:  # the deployment's default plan (operator_service.py) first
            await self.default_plan(event)
        await self.subscriptions.start_for_osmand_signup(event)

    async def usage_changed(self, events: list[Event]) -> None:
        """A batch of usage figures: only each account's newest counts (record_usage keeps the
        highest sequence anyway), so one update per account. The account document is made
        only when that update found none, not tried for every event."""
        for event, p in newest_usage(events):
            figures = {"used_bytes": p.used_bytes, "file_count": p.file_count}
            if not await self.store.record_usage(event.user_id, p.sequence, figures):
                await self.store.ensure_account(event.user_id, event.occurred_at)
                await self.store.record_usage(event.user_id, p.sequence, figures)


def newest_usage(events: list[Event]) -> list[tuple[Event, StorageUsageChanged]]:
    """Each account's event with the highest sequence, in the order accounts first appear."""
    newest: dict[str, tuple[Event, StorageUsageChanged]] = {}
    for event in events:
        p = event.payload()
        if not isinstance(p, StorageUsageChanged):
            continue
        if event.user_id not in newest or p.sequence > newest[event.user_id][1].sequence:
            newest[event.user_id] = (event, p)
    return list(newest.values())
