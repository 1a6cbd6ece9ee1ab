"""Deleting an account: a fresh code mailed for that purpose, then one write that records the
deletion with its `account-deleted` event, then every device revoked and the user removed.

The event rides in a tombstone document (`deleted_accounts`, keyed by a digest of the user id)
that outlives the user's documents; files, trash and billing erase their part when it arrives.
auth consumes it too and runs the same idempotent erase (app.py subscribes `erase`), which
finishes the job if the request died between the tombstone and the erase."""

from osmcloud_common.clock import Clock
from osmcloud_common.events import AccountDeleted
from osmcloud_common.logging import get_logger
from osmcloud_common.publisher import EventPublisher

from .codes import Codes
from .domain import Purpose
from .errors import AccountGone
from .ports import AccountStorePort, LimitsPort

log = get_logger(__name__)


class AccountDeletion:
    def __init__(self, store: AccountStorePort, codes: Codes, limits: LimitsPort, publisher: EventPublisher,
                 clock: Clock) -> None:
        self.store, self.codes, self.limits, self.publisher, self.clock = store, codes, limits, publisher, clock

    async def email_of(self, user_id: str) -> str:
        """The account's own address (the deletion code goes there); AccountGone if deleted."""
        user = await self.store.user(user_id)
        if user is None:
            raise AccountGone("this account no longer exists")
        email: str = user["email"]
        return email

    async def request_code(self, user_id: str, address: str | None, purpose: Purpose = Purpose.DELETE_ACCOUNT
                           ) -> dict[str, int | str]:
        return await self.codes.issue(await self.email_of(user_id), purpose, address)

    async def delete_with_code(self, user_id: str, code: str, address: str | None) -> None:
        """The native API's deletion: the code mailed for it, then the deletion."""
        email = await self.email_of(user_id)
        await self.codes.check(email, Purpose.DELETE_ACCOUNT, code.strip(), address)
        await self.delete_account(user_id)

    async def delete_account(self, user_id: str) -> None:
        """After the deletion code was accepted (native API and OsmAnd's delete-account alike)."""
        event = self.publisher.event(AccountDeleted(), user_id)
        if await self.store.record_deletion(user_id, self.clock.now(), [event]):
            self.publisher.events_written()
        removed = await self.erase(user_id)
        log.info("account deleted", user_id=user_id, documents=removed)

    async def erase(self, user_id: str) -> int:
        """Idempotent: revokes every device and removes everything of the user in auth."""
        return await self.store.erase_account(user_id, self.limits.forget_email)
