"""files on `account-deleted`: every document of the user in files' database (heads,
versions, the account's usage and entitlement, whatever else carries `user_id`) and every
blob under the user's prefix. Idempotent: a second run finds nothing to remove."""

from osmcloud_common.logging import get_logger
from osmcloud_common.runtime import Runtime

from .domain import blob_prefix

log = get_logger(__name__)


def register_account_deletion(runtime: Runtime) -> None:
    assert runtime.blobs is not None
    blob_store = runtime.blobs

    async def erase(user_id: str) -> None:
        # blobs first: if the sweep of documents failed afterwards, the retry finds them again;
        # the other way round a crash would leave blobs no document points to
        blobs = await blob_store.delete_prefix(blob_prefix(user_id))
        log.info("account blobs erased", user_id=user_id, blobs=blobs)
        await runtime.erase_user_documents(user_id)

    runtime.on_account_deleted(erase)
