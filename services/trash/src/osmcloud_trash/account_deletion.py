"""trash on `account-deleted`: every trash item (and any other document) of the user.
Trash keeps no blobs of its own (they belong to files). Idempotent."""

from osmcloud_common.logging import get_logger
from osmcloud_common.mongo import delete_user_data
from osmcloud_common.runtime import Runtime

log = get_logger(__name__)


def register_account_deletion(runtime: Runtime) -> None:
    async def erase(user_id: str) -> None:
        documents = await delete_user_data(runtime.db, user_id)
        log.info("account data erased", user_id=user_id, documents=documents)

    runtime.on_account_deleted(erase)
