"""What every service remembers of a deleted account: only that it was deleted.

On `account-deleted` a service first records a tombstone, then removes everything of that
user. The tombstone is keyed by a digest of the user id (no user id, no e-mail is kept), so a
scan for the user's id finds nothing, yet an event about that user that arrives late (another
topic, no ordering across topics) can be recognised and dropped instead of re-creating data.
Applying `account-deleted` twice changes nothing: the tombstone is an upsert, the sweep finds
nothing the second time."""

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime

from .mongo import Database

COLLECTION = "deleted_accounts"

# erases a user's data; what it returns (e.g. how many documents) is not used
Erase = Callable[[str], Awaitable[object]]


def account_key(user_id: str) -> str:
    return "sha256:" + hashlib.sha256(user_id.encode()).hexdigest()


class DeletedAccounts:
    def __init__(self, database: Database) -> None:
        self.collection = database[COLLECTION]

    async def remember(self, user_id: str, deleted_at: datetime) -> None:
        await self.collection.update_one({"_id": account_key(user_id)},
                                         {"$setOnInsert": {"deleted_at": deleted_at}}, upsert=True)

    async def contains(self, user_id: str) -> bool:
        return await self.collection.find_one({"_id": account_key(user_id)}, {"_id": 1}) is not None
