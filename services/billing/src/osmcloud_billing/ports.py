"""What billing's application layer needs of the outside world, as protocols: the account and
order storage (store.BillingStore on MongoDB; tests use an in-memory one). The clock and the
event publisher are osmcloud_common's (clock.Clock, publisher.EventPublisher)."""

from datetime import datetime
from typing import Any, Protocol

from .lifecycle import Subscription
from .receipts import VerifiedPurchase


class BillingStorePort(Protocol):
    async def ensure_account(self, user_id: str, now: datetime) -> None: ...

    async def account(self, user_id: str) -> dict[str, Any] | None: ...

    async def transition(self, user_id: str, before: Subscription, after: Subscription,
                         events: list[dict[str, Any]], also: dict[str, Any] | None = None,
                         expect: dict[str, Any] | None = None) -> bool:
        """`before` → `after` with its events in one write, only if still in `before` (and still
        holding the fields in `expect`); `also`: more fields set in the same write."""
        ...

    async def due(self, now: datetime, limit: int = 100) -> list[dict[str, Any]]: ...

    async def link_order(self, user_id: str, purchase: VerifiedPurchase, now: datetime) -> dict[str, Any]:
        """errors.OrderLinkedElsewhere when another account holds the order."""
        ...

    async def order(self, platform: str, order_id: str) -> dict[str, Any] | None: ...

    async def orders_by_order_id(self, order_id: str) -> list[dict[str, Any]]: ...

    async def orders_of(self, user_id: str) -> list[dict[str, Any]]: ...

    async def record_usage(self, user_id: str, sequence: int, usage: dict[str, Any]) -> bool: ...
