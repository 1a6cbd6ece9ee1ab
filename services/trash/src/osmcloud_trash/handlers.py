"""How trash reacts to events. Every handler is idempotent."""

from osmcloud_common.events import Event, FileDeleted, FileRestored, FileUploaded, FileVersionsPruned
from osmcloud_common.runtime import Runtime

from .domain import expires_at
from .settings import TrashSettings
from .store import TrashStore


async def add_deleted(store: TrashStore, purger, item: dict, occurred_at) -> None:
    """A deleted file enters the trash — unless the user emptied the trash after the delete
    happened (`occurred_at`, the event's time: the event arrived late, trash was away when
    files answered the delete and Kafka brought it after the "empty trash" had answered):
    then it is purged at once, as emptying promised. (A marker that becomes a file's head
    again after an empty — its newer version deleted for good — is a new event and stays.)"""
    await store.add(item)
    if await store.emptied_since(item["user_id"], occurred_at):
        await purger.purge([item], "emptied")


def register_handlers(runtime: Runtime, store: TrashStore, settings: TrashSettings, purger) -> None:
    async def file_deleted(event: Event) -> None:
        p: FileDeleted = event.payload()
        await add_deleted(store, purger, {
            "_id": p.tombstone_version_id, "user_id": event.user_id, "type": p.file_type, "name": p.name,
            "category": p.category, "size": p.size, "last_version_id": p.last_version_id,
            "deleted_at": p.deleted_at, "tombstone_update_ms": p.tombstone_update_ms,
            "expires_at": expires_at(p.deleted_at, settings.retention_days)}, event.occurred_at)

    async def files_uploaded(events: list[Event]) -> None:
        """Idempotent as a whole (an item deleted after an upload is never taken by that
        upload's event, however often it comes), so no processed-event bookkeeping: one
        delete per upload instead of three commands."""
        for event in events:
            p: FileUploaded = event.payload()
            await store.remove_file(event.user_id, p.file_type, p.name, p.updated_at)

    async def file_restored(event: Event) -> None:
        """The restore's HTTP answer normally removes the item; this covers a trash replica
        that died between files' answer and its own write."""
        p: FileRestored = event.payload()
        if p.tombstone_version_id:
            await store.remove_item(p.tombstone_version_id)

    async def versions_pruned(event: Event) -> None:
        """'Delete all my data' in files: nothing of the account is left to restore. Versions
        deleted for good: an item whose delete marker is among them is gone (an item's id is
        its marker's version id), e.g. OsmAnd's restore or "delete permanently", which delete
        the marker as a version."""
        p: FileVersionsPruned = event.payload()
        if p.everything:
            await store.remove_user(event.user_id)
        elif p.version_ids:
            await store.remove_items(p.version_ids)

    runtime.on_event(FileDeleted, file_deleted)
    runtime.on_events(FileUploaded, files_uploaded)
    runtime.on_event(FileRestored, file_restored)
    runtime.on_event(FileVersionsPruned, versions_pruned)
