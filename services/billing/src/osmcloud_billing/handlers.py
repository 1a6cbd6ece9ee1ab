"""How billing reacts to events. Every handler is idempotent."""

from osmcloud_common.events import AccountRegistered, Event, StorageUsageChanged
from osmcloud_common.runtime import Runtime

from .osmand_signup import activate_start_if_osmand
from .settings import BillingSettings
from .store import BillingStore


def register_handlers(runtime: Runtime, store: BillingStore, settings: BillingSettings) -> None:
    async def account_registered(event: Event) -> None:
        await store.ensure_account(event.user_id, event.occurred_at)
        await activate_start_if_osmand(runtime, store, settings, event)

    async def usage_changed(event: Event) -> None:
        p: StorageUsageChanged = event.payload()
        await store.ensure_account(event.user_id, event.occurred_at)
        await store.record_usage(event.user_id, p.sequence, {"used_bytes": p.used_bytes, "file_count": p.file_count})

    runtime.on_event(AccountRegistered, account_registered)
    runtime.on_event(StorageUsageChanged, usage_changed)
