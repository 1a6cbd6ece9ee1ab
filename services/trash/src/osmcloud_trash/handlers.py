"""How trash reacts to events. Every handler is idempotent; the composition root (app.py)
subscribes them."""

from datetime import datetime
from typing import TYPE_CHECKING, Any

from osmcloud_common.events import Event, FileDeleted, FileRestored, FileUploaded, FileVersionsPruned

from .domain import expires_at
from .ports import TrashStorePort

if TYPE_CHECKING:
    from .purge import Purger


async def add_deleted(store: TrashStorePort, purger: "Purger", item: dict[str, Any], occurred_at: datetime) -> None:
    """A deleted file enters the trash — unless the user emptied the trash after the delete
    happened (`occurred_at`, the event's time: the event arrived late, trash was away when
    files answered the delete and Kafka brought it after the "empty trash" had answered):
    then it is purged at once, as emptying promised. (A marker that becomes a file's head
    again after an empty — its newer version deleted for good — is a new event and stays.)"""
    await store.add(item)
    if await store.emptied_since(item["user_id"], occurred_at):
        await purger.purge([item], "emptied")


class Handlers:
    def __init__(self, store: TrashStorePort, retention_days: int, purger: "Purger") -> None:
        self.store, self.retention_days, self.purger = store, retention_days, purger

    async def file_deleted(self, event: Event) -> None:
        p = event.payload()
        assert isinstance(p, FileDeleted)
        await add_deleted(self.store, self.purger, {
            "_id": p.tombstone_version_id, "user_id": event.user_id, "type": p.file_type, "name": p.name,
            "category": p.category, "size": p.size, "last_version_id": p.last_version_id,
            "deleted_at": p.deleted_at, "tombstone_update_ms": p.tombstone_update_ms,
            "expires_at": expires_at(p.deleted_at, self.retention_days)}, event.occurred_at)

    async def files_uploaded(self, events: list[Event]) -> None:
        """A new upload to a trashed name takes it out of the trash: the items of that user,
        type and name deleted at or before the upload. Idempotent as a whole (an item deleted
        after an upload is never taken by that upload's event, however often it comes), so no
        processed-event bookkeeping.

        Per batch, not per upload: one index lookup per user and type for all the batch's
        names, and a delete by id only of what it found — usually nothing, as few uploads revive
        a trashed file. Every upload is still checked, not only those files saw reviving: an
        upload also takes out an item that a delete's late event put back (its hand-over failed,
        the reviving upload's was applied and recorded, so Kafka skips that upload's event and
        the next upload of the name is what removes it)."""
        newest: dict[tuple[str, str], dict[str, datetime]] = {}  # (user, type) -> name -> last upload
        for event in events:
            p = event.payload()
            assert isinstance(p, FileUploaded)
            names = newest.setdefault((event.user_id, p.file_type), {})
            names[p.name] = max(p.updated_at, names.get(p.name, p.updated_at))
        for (user_id, file_type), names in newest.items():
            found = await self.store.items_named(user_id, file_type, sorted(names))
            revived = [item["_id"] for item in found if item["deleted_at"] <= names[item["name"]]]
            if revived:
                await self.store.remove_items(revived)

    async def file_restored(self, event: Event) -> None:
        """The restore's HTTP answer normally removes the item; this covers a trash replica
        that died between files' answer and its own write."""
        p = event.payload()
        assert isinstance(p, FileRestored)
        if p.tombstone_version_id:
            await self.store.remove_item(p.tombstone_version_id)

    async def versions_pruned(self, event: Event) -> None:
        """'Delete all my data' in files: nothing of the account is left to restore. Versions
        deleted for good: an item whose delete marker is among them is gone (an item's id is
        its marker's version id), e.g. OsmAnd's restore or "delete permanently", which delete
        the marker as a version."""
        p = event.payload()
        assert isinstance(p, FileVersionsPruned)
        if p.everything:
            await self.store.remove_user(event.user_id)
        elif p.version_ids:
            await self.store.remove_items(p.version_ids)
