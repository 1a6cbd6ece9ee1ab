"""How files reacts to billing's entitlement events. Every handler is idempotent; the
composition root (app.py) subscribes them."""

from osmcloud_common.events import (
    EntitlementChanged,
    Event,
    SubscriptionActivated,
    SubscriptionExpired,
    SubscriptionRenewed,
)

from .store import FilesStore

# the events whose payload carries the account's entitlement as billing decided it
ENTITLEMENT_EVENTS = (SubscriptionActivated, SubscriptionRenewed, SubscriptionExpired, EntitlementChanged)


class EntitlementHandlers:
    def __init__(self, store: FilesStore) -> None:
        self.store = store

    async def entitlement_changed(self, event: Event) -> None:
        """For each of ENTITLEMENT_EVENTS (grace-period-ended also sends files to the trash:
        see grace.py)."""
        payload = event.payload()
        assert isinstance(payload, ENTITLEMENT_EVENTS)
        await self.store.set_entitlement(event.user_id, payload.entitlement, event.occurred_at)
