"""Changes of files that touch usage, as ledger operations.

Every change follows one shape, so that a crash at any point can be finished or undone:
  1. begin: the operation is recorded in the account document with what it reserves
     (and, for changes the feed must show, a change number drawn under a floor);
  2. the effects: version documents, the head moved (conditional on the head the change was
     based on) together with the operation's usage change (`_usage_pending`) and its events;
  3. finish: in one account update the reservation becomes the real usage change and the
     operation disappears. storage-usage-changed follows with the newest figures.
The reconciler (reconcile.py) runs `recover` for operations whose owner stopped renewing them:
a head that carries the operation's pending entry was moved, so its usage is settled;
otherwise the operation's version document and blob are removed and the reservation released.
"""

import asyncio
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from osmcloud_common.events import Entitlement, FileDeleted, FileRestored, FileVersionsPruned, StorageUsageChanged
from osmcloud_common.logging import get_logger
from osmcloud_common.mongo import find_by_ids

from .blob_cleanup import DeferredBlobDeletions
from .domain import (
    FileRef,
    blob_key,
    blob_prefix,
    head_after_removal,
    live_version_before,
    next_update_ms,
    parse_file_ref,
    restore_quota,
)
from .errors import (
    Busy,
    ChangeAbandoned,
    FileChanged,
    FileCountExceeded,
    FileNotFound,
    FileTooLarge,
    QuotaExceeded,
    VersionConflict,
    VersionInFlight,
    VersionNotFound,
)
from .ledger import Ledger, UsageEvent, busy_files
from .model import NO_USAGE, FileHead, Head, Usage, Version
from .ports import BlobMissing, Blobs, Clock, EventPublisher
from .storage_bound import StorageBound
from .storage_rule import RECORD_BYTES, version_cost
from .store import FilesStore, HeadMoved

log = get_logger(__name__)

PRUNE_BATCH = 500  # versions per file-versions-pruned event (keeps events well under Kafka's 1 MB)


def new_id() -> str:
    return uuid.uuid4().hex


def ref_of(user_id: str, doc: dict[str, Any]) -> FileRef:
    return parse_file_ref(user_id, doc["type"], doc["name"])


def file_key(user_id: str, version: Version) -> str:
    """The id of the head document of the version's file (FileRef.key)."""
    return f"{user_id}/{version.file_type}/{version.name}"


def as_head(version: Version | None) -> Head | None:
    """A version that becomes the head again (its successor removed): its own fields only."""
    return replace(version.head, extra={}) if version is not None else None


@dataclass(frozen=True)
class HeadChange:
    """One ledger operation's move of one file's head (steps 2b and 3 of the module doc):
    `current` is the head document it was based on and `expected` the head version it
    replaces (None: no file yet); `reserved` is what `begin` reserved, `delta` the usage it
    really changes; `events` go with the head's move, `finish_events` with the settlement;
    `began`: the account as `begin` returned it (Ledger.finish tries it before a read)."""
    ref: FileRef
    op_id: str
    current: FileHead | None
    in_flight: frozenset[str]
    expected: str | None
    head: Head | None
    events: list[dict[str, Any]]
    reserved: Usage
    delta: Usage
    seq: int | None
    reverted: bool = False
    finish_events: list[dict[str, Any]] = field(default_factory=list)
    began: dict[str, Any] | None = None


class Operations:
    def __init__(self, clock: Clock, events: EventPublisher, store: FilesStore, ledger: Ledger, blobs: Blobs,
                 bound: StorageBound, deferred: DeferredBlobDeletions, max_upload_bytes: int) -> None:
        self.clock, self.events, self.store, self.ledger, self.blobs = clock, events, store, ledger, blobs
        self.bound, self.deferred, self.max_upload_bytes = bound, deferred, max_upload_bytes

    # ------------------------------------------------------------ shared steps
    def usage_event(self, user_id: str) -> UsageEvent:
        """storage-usage-changed with the account's new absolute figures (the one place it is made)."""
        def make(seq: int, used: int, files: int, quota: int | None) -> dict[str, Any]:
            return self.events.event(StorageUsageChanged(sequence=seq, used_bytes=used, file_count=files,
                                                         quota_bytes=quota), user_id)
        return make

    async def hand_to_trash(self, entries: list[dict[str, Any]]) -> None:
        """The trash page is the client's next read after a delete, a restore by version
        removal or an upload over a trashed file: trash applies these events before we answer
        (read-your-writes, osmcloud_common.handover); Kafka still carries them."""
        await self.events.hand_to_trash(entries)

    async def commit(self, change: HeadChange) -> dict[str, Any]:
        """Steps 2b and 3: moves the head (HeadMoved if it moved meanwhile) and settles;
        returns the account document after the settlement."""
        ref, op_id = change.ref, change.op_id
        if not await self.ledger.hold(ref.user_id, op_id):
            # taken for dead and undone meanwhile (a stall longer than its time-to-live): the
            # reconciler removed what it had written then; what it wrote since goes now
            await self._discard_written(ref, op_id, change.head)
            raise ChangeAbandoned()
        keep = change.current.pending_of(change.in_flight, but=op_id) if change.current else []
        outbox = await self.store.change_head(
            ref, change.expected, change.head, change.events,
            pending={"op": op_id, "bytes": change.delta.bytes, "files": change.delta.files,
                     "stored": change.delta.stored},
            keep_pending=keep, changed_seq=change.seq, reverted=change.reverted)
        self.events.head_written(ref.key, outbox)
        after = await self.ledger.finish(ref.user_id, op_id, change.reserved, change.delta,
                                         change.finish_events or None, self.usage_event(ref.user_id), change.began)
        if after is None:  # the reconciler finished it first (the op had expired)
            after = await self.ledger.get(ref.user_id)
        self.events.account_written(ref.user_id)
        return after

    async def _discard_written(self, ref: FileRef, op_id: str, head: Head | None) -> None:
        """The version (and its blob) an abandoned operation wrote for the head it did not move."""
        version = await self.store.find_version(ref, head.version_id) if head is not None else None
        if version is None or version.op != op_id:
            return
        if version.blob_key:
            await self.deferred.delete_or_defer(ref.user_id, version.blob_key)
        await self.store.remove_version(version.id)

    async def begin_plain(self, user_id: str, op_id: str, op: dict[str, Any], floor: int | None = None
                          ) -> dict[str, Any]:
        """Begins an operation that reserves nothing; only "delete all" in progress stops it."""
        await self.ledger.ensure(user_id)
        began = await self.ledger.begin(user_id, op_id, op, quota=0, max_files=None, bytes_=0, files=0, floor=floor)
        if began is None:
            raise Busy()
        return began

    # ------------------------------------------------------------ delete (delete marker)
    async def delete_file(self, ref: FileRef, base: str | None, device_id: str, client_ms: int | None,
                          extra: dict[str, Any] | None = None) -> Head:
        """A delete marker as the file's new head; `extra`: more fields for its version document."""
        current = await self.store.file_head(ref)
        if current is None or current.head is None or current.head.deleted:
            raise FileNotFound(f"no such file: {ref.file_type}/{ref.name}")
        if base is not None and current.head.version_id != base:
            raise VersionConflict(current.to_doc())
        last = current.head
        account = await self.ledger.get(ref.user_id)
        op_id, tombstone_id = new_id(), new_id()
        began = await self.begin_plain(ref.user_id, op_id, {"kind": "delete", "file": ref.key,
                                                            "version_id": tombstone_id, "blob_key": None},
                                       floor=account["change_seq"])
        seq = began["change_seq"]
        now = self.clock.now()
        head = Head(tombstone_id, -1, None, next_update_ms(int(now.timestamp() * 1000), last.updated_ms),
                    client_ms, device_id, deleted=True, seq=seq)
        try:
            await self.store.add_version(Version(ref.user_id, ref.file_type, ref.name, head, None, op_id, now,
                                                 extra or {}))
            event = self.events.event(FileDeleted(file_type=ref.file_type, name=ref.name, category=ref.category,
                                                  tombstone_version_id=tombstone_id,
                                                  last_version_id=last.version_id, size=last.size,
                                                  deleted_at=now, tombstone_update_ms=head.updated_ms), ref.user_id)
            after = await self.commit(HeadChange(
                ref, op_id, current, frozenset(began["ops"]), last.version_id, head, [event], reserved=Usage(),
                delta=Usage(-last.size, -1, RECORD_BYTES), seq=seq))
        except HeadMoved:
            await self.settle_or_undo(ref.user_id, op_id)
            raise VersionConflict(await self.store.head(ref)) from None
        except BaseException:
            await self.settle_or_undo(ref.user_id, op_id)
            raise
        await self.bound.enforce(ref, RECORD_BYTES, after)
        await self.hand_to_trash([event])
        return head

    # ------------------------------------------------------------ delete one version permanently
    async def remove_version(self, ref: FileRef, version_id: str) -> FileHead | None:
        """Deletes one version for good; returns the file's head document afterwards (None:
        no version left). Removing the head makes the version before it the head (a delete
        marker included, as on the reference server), or leaves no file when it was the only
        one; usage follows. Emits file-versions-pruned for the version (trash drops the item
        of a removed delete marker). Removing the delete marker of a file in the trash brings
        its last version back — OsmAnd's "restore" — under the quota and plan rules of a
        restore, with file-restored; a delete marker that becomes the head again puts the
        file back in the trash (file-deleted)."""
        current = await self.store.file_head(ref)
        version = await self.store.find_version(ref, version_id)
        account = await self.ledger.get(ref.user_id)
        if version is None:
            raise VersionNotFound(f"{ref.file_type}/{ref.name} has no version {version_id}")
        if version.op in account["ops"]:
            raise VersionInFlight(version_id)
        is_head = current is not None and current.version_id == version_id
        pruned = self.events.event(FileVersionsPruned(file_type=ref.file_type, version_ids=[version_id],
                                                      freed_bytes=max(0, version.size)), ref.user_id)
        op_id = new_id()
        op = {"kind": "remove-version", "file": ref.key, "version_id": version_id,
              "blob_key": version.blob_key, "events": [pruned]}
        history = await self.store.history_for_removal(ref) if is_head else []
        below = head_after_removal(history, version_id) if is_head else None
        was_live = is_head and current is not None and current.live
        now_live = below is not None and not below.deleted
        # a file that comes back to life takes quota like a restore: reserved before the change
        grows = max(0, below.size) if below is not None and now_live and not was_live else 0
        revives = int(now_live and not was_live)
        quota, quota_field, max_files = 0, "quota_bytes", None
        if revives:
            entitlement = Entitlement.model_validate(account["entitlement"]) if account.get("entitlement") else None
            quota, quota_field = restore_quota(entitlement, ref.file_type)
            max_files = entitlement.max_files if entitlement is not None and quota_field == "quota_bytes" else None
        await self.ledger.ensure(ref.user_id)
        began = await self.ledger.begin(ref.user_id, op_id, op, quota=quota, max_files=max_files, bytes_=grows,
                                        files=revives, floor=account["change_seq"] if is_head else None,
                                        quota_field=quota_field)
        if began is None:
            latest = await self.ledger.get(ref.user_id)
            if latest.get("frozen") or not revives:
                raise Busy()
            if max_files is not None and latest["committed_files"] + 1 > max_files:
                raise FileCountExceeded(max_files, latest["file_count"])
            raise QuotaExceeded(grows, latest["committed_bytes"], quota)
        if current is None or not is_head:
            await self._drop_version(version)
            await self.ledger.finish(ref.user_id, op_id, NO_USAGE, Usage(stored=-version_cost(version.size)),
                                     events=[pruned])
            self.events.account_written(ref.user_id)
            await self.hand_to_trash([pruned])
            return current

        events = []
        if below is not None and below.deleted:
            # the file reads as deleted again, as it was before: back to the trash (an item
            # that still exists stays as it is: trash adds by the marker's id)
            before = live_version_before(history, below.id)
            events.append(self.events.event(FileDeleted(
                file_type=ref.file_type, name=ref.name, category=ref.category, tombstone_version_id=below.id,
                last_version_id=(before or below).id, size=before.size if before else 0,
                deleted_at=below.created_at or self.clock.now(), tombstone_update_ms=below.head.updated_ms),
                ref.user_id))
        elif below is not None and not was_live:
            events.append(self.events.event(FileRestored(file_type=ref.file_type, name=ref.name, version_id=below.id,
                                                         tombstone_version_id=version_id), ref.user_id))
        live_after = below.size if below is not None and now_live else 0
        live_before = current.head.size if current.head is not None and was_live else 0
        try:
            await self.commit(HeadChange(
                ref, op_id, current, frozenset(began["ops"]), version_id, as_head(below), events,
                reserved=Usage(grows, revives),
                delta=Usage(live_after - live_before, int(now_live) - int(was_live), -version_cost(version.size)),
                seq=began["change_seq"], reverted=True, finish_events=[pruned]))
        except HeadMoved:
            await self.ledger.finish(ref.user_id, op_id, Usage(grows, revives))
            raise VersionConflict(await self.store.head(ref)) from None
        # the head no longer names it: a crash before these lines is completed by the reconciler
        await self._drop_version(version)
        await self.hand_to_trash([*events, pruned])
        return await self.store.file_head(ref)

    async def _drop_version(self, version: Version) -> None:
        await self.store.remove_version(version.id)
        if version.blob_key:
            await self.blobs.delete(version.blob_key)

    # ------------------------------------------------------------ restore from the trash
    async def restore(self, ref: FileRef, tombstone_id: str, last_version_id: str, device_id: str | None
                      ) -> tuple[Head, bool]:
        """Brings a trashed file back: its last live version saved again as a NEW version (new
        id and server time; its blob a server-side copy, so no blob is shared by two versions),
        under the quota and plan rules of a restore (domain.restore_quota), and the head moves
        from the delete marker to it — a ledger operation like any other change, so a crash
        at any point is finished or undone by the reconciler. Returns the new head and whether
        the restore had been made before (a retry finds the head it made)."""
        current = await self.store.file_head(ref)
        if current is None or current.head is None:
            raise FileNotFound(f"{ref.file_type}/{ref.name} is gone (purged)")
        head = current.head
        if head.restored_from == tombstone_id:
            return head, True
        if head.version_id != tombstone_id:
            raise FileChanged(f"{ref.file_type}/{ref.name} changed since it was deleted (uploaded or restored "
                              "again); download the trashed version instead if you want it back")
        gone = VersionNotFound(f"the trashed version of {ref.file_type}/{ref.name} is gone (purged)")
        source = await self.store.find_version(ref, last_version_id)
        if source is None or source.deleted or not source.blob_key:
            raise gone
        account = await self.ledger.get(ref.user_id)
        entitlement = Entitlement.model_validate(account["entitlement"]) if account.get("entitlement") else None
        quota, quota_field = restore_quota(entitlement, ref.file_type)
        size = source.size  # the restored copy takes exactly the trashed version's bytes
        # during grace what Pro stored comes back whatever Start's per-file limit says
        per_file = entitlement.max_file_bytes if entitlement is not None and quota_field == "quota_bytes" else None
        limit = min(x for x in (per_file, self.max_upload_bytes) if x is not None)
        if size > limit:
            raise FileTooLarge(f"the file has {size} bytes; the plan allows at most {limit} bytes per file")
        op_id, version_id = new_id(), new_id()
        key = blob_key(ref.user_id, version_id)
        await self.ledger.ensure(ref.user_id)
        began = await self.ledger.begin(ref.user_id, op_id, {"kind": "restore", "file": ref.key,
                                                             "version_id": version_id, "blob_key": key},
                                        quota=quota, max_files=None, bytes_=size, files=1,
                                        floor=account["change_seq"], quota_field=quota_field)
        if began is None:
            latest = await self.ledger.get(ref.user_id)
            if latest.get("frozen"):
                raise Busy()
            raise QuotaExceeded(size, latest["committed_bytes"], quota)
        try:
            try:
                await self.blobs.copy(source.blob_key, key)
            except BlobMissing:
                raise gone from None
            now = self.clock.now()
            new_head = Head(version_id, size, source.head.checksum, next_update_ms(int(now.timestamp() * 1000),
                                                                              head.updated_ms),
                            source.head.client_ms, device_id or None, deleted=False, seq=began["change_seq"],
                            extra={"restored_from": tombstone_id})
            await self.store.add_version(Version(ref.user_id, ref.file_type, ref.name, new_head, key, op_id, now))
            event = self.events.event(FileRestored(file_type=ref.file_type, name=ref.name, version_id=version_id,
                                                   tombstone_version_id=tombstone_id), ref.user_id)
            after = await self.commit(HeadChange(
                ref, op_id, current, frozenset(began["ops"]), tombstone_id, new_head, [event],
                reserved=Usage(size, 1), delta=Usage(size, 1, version_cost(size)), seq=began["change_seq"]))
        except HeadMoved:
            await self.settle_or_undo(ref.user_id, op_id)
            raise FileChanged(f"{ref.file_type}/{ref.name} changed while it was being restored") from None
        except BaseException:
            await self.settle_or_undo(ref.user_id, op_id)
            raise
        await self.bound.enforce(ref, version_cost(size), after)  # the restored copy is new stored bytes
        log.info("file restored", type=ref.file_type, name=ref.name, version_id=version_id, tombstone=tombstone_id)
        return new_head, False

    # ------------------------------------------------------------ delete old versions
    async def prune(self, user_id: str, file_type: str | None) -> dict[str, Any]:
        """Keeps only the head of every live file (of one type, or all): every other version
        and its blob goes. Files in the trash (a delete marker as head) keep their versions
        until the trash purges them; files with an operation in flight are left alone."""
        op_id = new_id()
        await self.begin_plain(user_id, op_id, {"kind": "prune", "type": file_type})
        removed, freed = await self._prune(user_id, op_id, file_type)
        await self.ledger.finish(user_id, op_id, NO_USAGE)
        return {"type": file_type, "removed_versions": removed, "freed_bytes": freed}

    async def _prune(self, user_id: str, op_id: str, file_type: str | None) -> tuple[int, int]:
        """Pages through the account's versions (oldest change first); per page, the versions
        are read before the in-flight check, so an upload that starts meanwhile is seen busy."""
        types = [file_type] if file_type else None
        removed = freed = 0
        after = -1
        while True:
            versions = [Version.from_doc(v) for v in await self.store.versions_page(user_id, types, after,
                                                                                     PRUNE_BATCH)]
            if not versions:
                break
            after = max(v.head.seq or 0 for v in versions)
            account = await self.ledger.get(user_id)
            busy = busy_files(account, but=op_id)
            keys = sorted({file_key(user_id, v) for v in versions})
            heads = {h["_id"]: Head.from_doc(h["head"])
                     for h in await find_by_ids(self.store.heads, keys, {"_id": 1, "head": 1}) if h.get("head")}
            doomed = []
            for v in versions:
                key = file_key(user_id, v)
                head = heads.get(key)
                if head is None or head.deleted or key in busy:
                    continue
                if v.id != head.version_id:
                    doomed.append(v)
            if not doomed:
                continue
            size = sum(max(0, v.size) for v in doomed)
            # the event first: a crash after it leaves versions the next prune removes
            await self.ledger.add_events(user_id, [self.events.event(FileVersionsPruned(
                file_type=file_type, version_ids=[v.id for v in doomed], freed_bytes=size), user_id)])
            self.events.account_written(user_id)
            await self.store.delete_versions([v.id for v in doomed])
            await self.blobs.delete_many([v.blob_key for v in doomed if v.blob_key])
            await self.ledger.add_stored(user_id, -sum(version_cost(v.size) for v in doomed))
            removed += len(doomed)
            freed += size
        return removed, freed

    # ------------------------------------------------------------ delete all my data
    async def delete_all(self, user_id: str, wait_seconds: float = 10.0) -> dict[str, Any]:
        """Every version, head and blob of the account, at once. New operations are refused
        while it runs; uploads still streaming fail when they try to commit."""
        op_id = new_id()
        await self.ledger.ensure(user_id)
        if not await self.ledger.freeze(user_id, op_id, {"kind": "delete-all"}):
            raise Busy()
        # operations past their last check (they hold a change number) finish within moments
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while asyncio.get_running_loop().time() < deadline:
            account = await self.ledger.get(user_id)
            if not any(op.get("floor") is not None for oid, op in account["ops"].items() if oid != op_id):
                break
            await asyncio.sleep(0.05)
        return await self._delete_all(user_id, op_id)

    async def _delete_all(self, user_id: str, op_id: str) -> dict[str, Any]:
        count, freed = await self.store.count_versions(user_id)
        await self.blobs.delete_prefix(blob_prefix(user_id))
        await self.store.delete_everything_of(user_id)
        event = self.events.event(FileVersionsPruned(file_type=None, version_ids=[], freed_bytes=freed,
                                                 everything=True), user_id)
        await self.ledger.clear_usage(user_id, op_id, [event], self.usage_event(user_id))
        self.events.account_written(user_id)
        await self.hand_to_trash([event])
        return {"removed_versions": count, "freed_bytes": freed}

    # ------------------------------------------------------------ delete a type from the cloud
    async def delete_type(self, user_id: str, file_type: str, device_id: str) -> dict[str, Any]:
        """Sends every live file of a type to the trash: a delete marker each, with file-deleted."""
        heads = [h for h in await self.store.live_heads(user_id, [file_type])]
        result = await self.trash_files(user_id, heads, device_id, {"kind": "delete-type", "type": file_type})
        return {"type": file_type, **result}

    async def trash_files(self, user_id: str, heads: list[dict[str, Any]], device_id: str, op: dict[str, Any],
                          marker_fields: dict[str, Any] | None = None) -> dict[str, Any]:
        """Sends these live files (head documents) to the trash in one operation: a delete
        marker each, with file-deleted. `marker_fields` go into each marker (head and version
        document). A file changed meanwhile by another device is left as it is now."""
        account = await self.ledger.get(user_id)
        op_id = new_id()
        began = await self.begin_plain(user_id, op_id, op)
        in_flight = frozenset(began["ops"])
        # one block of change numbers for all the markers, drawn in one atomic step
        last_seq = await self.ledger.draw(user_id, op_id, account["change_seq"], len(heads)) if heads else 0
        if last_seq is None:
            await self.ledger.finish(user_id, op_id, NO_USAGE)
            raise Busy()
        seqs = iter(range(last_seq - len(heads) + 1, last_seq + 1))
        deleted, skipped, delta_bytes, trashed = [], [], 0, []
        now = self.clock.now()
        for doc in heads:
            current = FileHead.from_doc(doc)
            ref = ref_of(user_id, doc)
            last = current.head
            assert last is not None
            tombstone_id, seq = new_id(), next(seqs)
            head = Head(tombstone_id, -1, None, next_update_ms(int(now.timestamp() * 1000), last.updated_ms), None,
                        device_id, deleted=True, seq=seq, extra=dict(marker_fields or {}))
            await self.store.add_version(Version(user_id, ref.file_type, ref.name, head, None, op_id, now))
            event = self.events.event(FileDeleted(file_type=ref.file_type, name=ref.name, category=ref.category,
                                                  tombstone_version_id=tombstone_id,
                                                  last_version_id=last.version_id, size=last.size,
                                                  deleted_at=now, tombstone_update_ms=head.updated_ms), user_id)
            try:
                outbox = await self.store.change_head(ref, last.version_id, head, [event],
                                                      pending={"op": op_id, "bytes": -last.size, "files": -1,
                                                               "stored": RECORD_BYTES},
                                                      keep_pending=current.pending_of(in_flight), changed_seq=seq)
            except HeadMoved:  # changed meanwhile by another device: left as it is now
                await self.store.remove_version(tombstone_id)
                skipped.append(ref.name)
                continue
            self.events.head_written(ref.key, outbox)
            deleted.append(ref.name)
            trashed.append(event)
            delta_bytes -= last.size
        delta = Usage(delta_bytes, -len(deleted), RECORD_BYTES * len(deleted))
        await self.ledger.finish(user_id, op_id, NO_USAGE, delta, usage_event=self.usage_event(user_id))
        self.events.account_written(user_id)
        await self.hand_to_trash(trashed)
        return {"deleted": len(deleted), "skipped": skipped}

    # ------------------------------------------------------------ crash recovery
    async def settle_or_undo(self, user_id: str, op_id: str) -> None:
        """After a failure in the middle of an operation: finish it if its head moved, undo it
        otherwise (the same decision the reconciler takes after a crash)."""
        try:
            account = await self.ledger.get(user_id)
            op = account["ops"].get(op_id)
            if op is not None:
                await asyncio.shield(self.recover(account, op_id, op, quiet=True))
        except Exception as exc:  # left for the reconciler
            log.error("could not settle or undo an operation; the reconciler will", op_id=op_id, error=repr(exc))

    async def recover(self, account: dict[str, Any], op_id: str, op: dict[str, Any], quiet: bool = False) -> None:
        """Finishes or undoes an operation whose owner is gone. Idempotent, and safe to run
        in several replicas at once: every step is conditional or repeatable."""
        user_id = account["_id"]
        kind = op.get("kind")
        if not quiet:
            log.warning("recovering an abandoned operation", user_id=user_id, op_id=op_id, kind=kind)
        if kind == "delete-all":
            await self._delete_all(user_id, op_id)
            return
        heads = [FileHead.from_doc(h) for h in await self.store.heads_with_pending(user_id, op_id)]
        mine = {h.key: [e for e in h.pending if e["op"] == op_id] for h in heads}
        delta_bytes = sum(e["bytes"] for entries in mine.values() for e in entries)
        delta_files = sum(e["files"] for entries in mine.values() for e in entries)
        stored_delta = sum(e.get("stored", 0) for entries in mine.values() for e in entries)
        events = op.get("events") or None
        if kind in ("upload", "delete", "restore") and not heads and op.get("version_id"):
            await self.store.remove_version(op["version_id"])  # the head never moved to it
            if op.get("blob_key"):  # S3 away (the upload failed for it): deleted once it is back
                await self.deferred.delete_or_defer(user_id, op["blob_key"])
            events = None
        elif kind == "remove-version":
            doc = await self.store.head_doc(op["file"])
            current = FileHead.from_doc(doc) if doc else None
            if current is not None and current.version_id == op["version_id"]:
                events = None
            else:
                await self.store.remove_version(op["version_id"])
                if op.get("blob_key"):
                    await self.blobs.delete(op["blob_key"])
        elif kind == "bulk-upload":
            # a file whose head carries the pending entry was moved (whatever its head is now);
            # the versions of the others are strays, and so are their blobs, written or not
            moved_files = {h.key for h in heads}
            strays = [t["version_id"] for t in op.get("targets") or () if t["key"] not in moved_files]
            await self.store.remove_versions_of(user_id, op_id, strays)
            for version_id in strays:
                await self.deferred.delete_or_defer(user_id, blob_key(user_id, version_id))
        elif kind in ("delete-type", "grace-end"):
            moved = {h.version_id for h in heads if h.head is not None}
            strays = [v["_id"] for v in await self.store.versions_of_op(user_id, op_id) if v["_id"] not in moved]
            await self.store.delete_versions(strays)
        elif kind == "prune":
            await self._prune(user_id, op_id, op.get("type"))
        await self.ledger.finish(user_id, op_id, Usage(op.get("bytes", 0), op.get("files", 0)),
                                 Usage(delta_bytes, delta_files, stored_delta), events, self.usage_event(user_id))
        for key, entries in mine.items():
            await self.store.drop_pending(key, entries)
        self.events.account_written(user_id)
