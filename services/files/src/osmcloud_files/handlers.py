"""How files reacts to other services' events. Every handler is idempotent."""

from osmcloud_common.events import (
    EntitlementChanged,
    Event,
    SubscriptionActivated,
    SubscriptionExpired,
    SubscriptionRenewed,
)
from osmcloud_common.runtime import Runtime

from .store import FilesStore

# the events whose payload carries the account's entitlement as billing decided it
ENTITLEMENT_EVENTS = (SubscriptionActivated, SubscriptionRenewed, SubscriptionExpired, EntitlementChanged)


def register_handlers(runtime: Runtime, store: FilesStore) -> None:
    async def entitlement_changed(event: Event) -> None:
        payload = event.payload()
        assert isinstance(payload, ENTITLEMENT_EVENTS)
        await store.set_entitlement(event.user_id, payload.entitlement, event.occurred_at)

    # grace-period-ended also sends files to the trash: see grace.py
    for payload_type in ENTITLEMENT_EVENTS:
        runtime.on_event(payload_type, entitlement_changed)
