"""files on `account-deleted`: every document of the user in files' database (heads,
versions, the account's usage and entitlement, whatever else carries `user_id`) and every
blob under the user's prefix. Idempotent: a second run finds nothing to remove."""

from osmcloud_common.deleted_accounts import Erase
from osmcloud_common.logging import get_logger

from .domain import blob_prefix
from .ports import Blobs

log = get_logger(__name__)


class AccountErasure:
    """`erase_documents` removes every document of a user in files' database (the Runtime's
    erase_user_documents); the composition root (app.py) hands `erase` to on_account_deleted."""

    def __init__(self, blobs: Blobs, erase_documents: Erase) -> None:
        self.blobs, self.erase_documents = blobs, erase_documents

    async def erase(self, user_id: str) -> None:
        # blobs first: if the sweep of documents failed afterwards, the retry finds them again;
        # the other way round a crash would leave blobs no document points to
        blobs = await self.blobs.delete_prefix(blob_prefix(user_id))
        log.info("account blobs erased", user_id=user_id, blobs=blobs)
        await self.erase_documents(user_id)
