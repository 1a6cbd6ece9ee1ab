"""How billing reacts to events. Every handler is idempotent."""

from collections.abc import Awaitable, Callable

from osmcloud_common.events import AccountRegistered, Event, StorageUsageChanged
from osmcloud_common.runtime import Runtime

from .osmand_signup import activate_start_if_osmand
from .settings import BillingSettings
from .store import BillingStore


def register_handlers(runtime: Runtime, store: BillingStore, settings: BillingSettings,
                      default_plan: Callable[[Event], Awaitable[None]] | None = None) -> None:
    async def account_registered(event: Event) -> None:
        await store.ensure_account(event.user_id, event.occurred_at)
        if default_plan is not None:  # the deployment's default plan (operator_service.py) first
            await default_plan(event)
        await activate_start_if_osmand(runtime, store, settings, event)

    async def usage_changed(events: list[Event]) -> None:
        """A batch of usage figures: only each account's newest counts (record_usage keeps the
        highest sequence anyway), so one update per account. The account document is made
        only when that update found none, not tried for every event."""
        for event, p in newest_usage(events):
            figures = {"used_bytes": p.used_bytes, "file_count": p.file_count}
            if not await store.record_usage(event.user_id, p.sequence, figures):
                await store.ensure_account(event.user_id, event.occurred_at)
                await store.record_usage(event.user_id, p.sequence, figures)

    runtime.on_event(AccountRegistered, account_registered)
    runtime.on_events(StorageUsageChanged, usage_changed)


def newest_usage(events: list[Event]) -> list[tuple[Event, StorageUsageChanged]]:
    """Each account's event with the highest sequence, in the order accounts first appear."""
    newest: dict[str, tuple[Event, StorageUsageChanged]] = {}
    for event in events:
        p: StorageUsageChanged = event.payload()
        if event.user_id not in newest or p.sequence > newest[event.user_id][1].sequence:
            newest[event.user_id] = (event, p)
    return list(newest.values())
