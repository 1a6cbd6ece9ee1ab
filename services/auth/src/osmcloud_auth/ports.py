"""What auth's application layer needs of the outside world, as protocols: its storage
(store.AuthStore on MongoDB), the hourly limits (limits.RequestLimits), the mailer
(mailer.Mailer over SMTP). Service-layer tests pass in-memory ones. The clock and the event
publisher are osmcloud_common's (clock.Clock, publisher.EventPublisher)."""

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from .domain import Purpose


class CodeStorePort(Protocol):
    async def replace_code(self, email: str, purpose: Purpose, address: str, code_digest: str, now: datetime,
                           ttl: timedelta, resend_after: timedelta) -> datetime | None:
        """Stores a new code for this requesting address; None when stored, else when the next
        one may be sent (the resend cooldown)."""
        ...

    async def codes_for(self, email: str, purpose: Purpose) -> list[dict[str, Any]]: ...

    async def take_try(self, code_id: str, field: str, limit: int) -> bool:
        """Counts one try against one budget of a live code; False when that budget is spent."""
        ...

    async def mark_used(self, code_id: str, code_digest: str) -> bool: ...

    async def remember_address(self, email: str, where: str, now: datetime) -> None: ...

    async def is_known_address(self, email: str, where: str, since: datetime) -> bool: ...


class LimitsPort(Protocol):
    async def take(self, key: str, limit: int, now: datetime) -> datetime | None:
        """Counts one request; None when allowed, else when the window reopens."""
        ...

    async def give_back(self, key: str) -> None: ...

    async def forget_email(self, email: str) -> None: ...


class MailerPort(Protocol):
    async def send_code(self, to: str, code: str, purpose: Purpose, valid_minutes: int) -> None: ...


class AccountStorePort(Protocol):
    async def user_by_email(self, email: str) -> dict[str, Any] | None: ...

    async def user(self, user_id: str) -> dict[str, Any] | None: ...

    async def user_num(self, user: dict[str, Any]) -> int: ...

    async def set_orderid(self, user_id: str, orderid: str | None) -> None: ...

    async def create_user(self, email: str, now: datetime,
                          events_for: Callable[[str], list[dict[str, Any]]]) -> tuple[dict[str, Any], bool]:
        """(user, created); the events `events_for(user_id)` ride in the new user's document."""
        ...

    async def add_device(self, user_id: str, token_digest: str, description: dict[str, str], now: datetime,
                         user_num: int | None = None) -> dict[str, Any]: ...

    async def live_devices_like(self, user_id: str, phone_id: str, model: str) -> list[dict[str, Any]]: ...

    async def devices_of(self, user_id: str) -> list[dict[str, Any]]:
        """The account's logged-in devices, oldest first."""
        ...

    async def revoke_device(self, user_id: str, device_id: str, now: datetime, events: list[dict[str, Any]]) -> bool:
        """False when it is not a live device of that user; the event rides in the device's document."""
        ...

    async def record_deletion(self, user_id: str, now: datetime, events: list[dict[str, Any]]) -> bool: ...

    async def erase_account(self, user_id: str, forget_email: Callable[[str], Awaitable[None]]) -> int: ...
