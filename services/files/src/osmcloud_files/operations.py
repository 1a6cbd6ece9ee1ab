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
import time
import uuid
from typing import Any

from osmcloud_common.blobstore import BlobStore
from osmcloud_common.errors import Conflict, NotFound
from osmcloud_common.events import (Entitlement, FileDeleted, FileRestored, FileVersionsPruned,
                                    StorageUsageChanged)
from osmcloud_common.logging import get_logger
from osmcloud_common.mongo import find_by_ids
from osmcloud_common.runtime import Runtime

from .blob_cleanup import DeferredBlobDeletions
from .domain import (FileRef, file_count_exceeded, head_after_removal, live_version_before, next_update_ms,
                     parse_file_ref, quota_exceeded, restore_quota)
from .storage_bound import StorageBound
from .storage_rule import RECORD_BYTES, version_cost
from .store import FilesStore, HeadMoved
from .views import head_view

log = get_logger(__name__)

PRUNE_BATCH = 500  # versions per file-versions-pruned event (keeps events well under Kafka's 1 MB)


def new_id() -> str:
    return uuid.uuid4().hex


def ref_of(user_id: str, doc: dict[str, Any]) -> FileRef:
    return parse_file_ref(user_id, doc["type"], doc["name"])


class Busy(Conflict):
    def __init__(self) -> None:
        super().__init__("all data of this account is being deleted right now; try again in a moment",
                         code="account_busy")


class Operations:
    def __init__(self, runtime: Runtime, store: FilesStore, blobs: BlobStore) -> None:
        self.rt, self.store, self.blobs, self.ledger = runtime, store, blobs, store.ledger
        self.bound = StorageBound(runtime, store, blobs)
        self.deferred = DeferredBlobDeletions(runtime.db["blob_deletions"], blobs, time.time)

    # ------------------------------------------------------------ shared steps
    def usage_event(self, user_id: str):
        def make(seq: int, used: int, files: int, quota: int | None) -> dict:
            return self.rt.event(StorageUsageChanged(sequence=seq, used_bytes=used, file_count=files,
                                                     quota_bytes=quota), user_id)
        return make

    def written(self, head_key: str | None = None, user_id: str | None = None) -> None:
        """Wakes the outbox relay for the documents that just got events."""
        if head_key:
            self.rt.events_written(self.store.heads, head_key)
        if user_id:
            self.rt.events_written(self.store.accounts, user_id)

    async def hand_to_trash(self, entries: list[dict]) -> None:
        """The trash page is the client's next read after a delete, a restore by version
        removal or an upload over a trashed file: trash applies these events before we answer
        (read-your-writes, osmcloud_common.handover); Kafka still carries them."""
        await self.rt.hand_over("trash", entries)

    def now_ms(self) -> int:
        return int(self.rt.clock.now().timestamp() * 1000)

    async def commit(self, ref: FileRef, op_id: str, current: dict | None, in_flight: set[str],
                     expected: str | None, head: dict | None, events: list[dict], *, reserved_bytes: int,
                     reserved_files: int, delta_bytes: int, delta_files: int, seq: int | None,
                     reverted: bool = False, finish_events: list[dict] | None = None,
                     stored_delta: int = 0) -> dict[str, Any]:
        """Steps 2b and 3: moves the head (HeadMoved if it moved meanwhile) and settles.
        `stored_delta`: the change of the account's stored bytes (storage_rule.py)."""
        keep = [e for e in (current or {}).get("_usage_pending", []) if e["op"] in in_flight and e["op"] != op_id]
        await self.store.change_head(ref, expected, head, events,
                                     pending={"op": op_id, "bytes": delta_bytes, "files": delta_files,
                                              "stored": stored_delta},
                                     keep_pending=keep, changed_seq=seq, reverted=reverted)
        self.written(head_key=ref.key)
        after = await self.ledger.finish(ref.user_id, op_id, reserved_bytes, reserved_files, delta_bytes,
                                         delta_files, finish_events, self.usage_event(ref.user_id),
                                         stored_delta=stored_delta)
        if after is None:  # the reconciler finished it first (the op had expired)
            after = await self.ledger.get(ref.user_id)
        self.written(user_id=ref.user_id)
        return after

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
                          conflict, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """A delete marker as the file's new head; `extra`: more fields for its version document."""
        current = await self.store.head(ref)
        if current is None or current["head"]["deleted"]:
            raise NotFound(f"no such file: {ref.file_type}/{ref.name}", code="file_not_found")
        if base is not None and current["head"]["version_id"] != base:
            raise conflict(current)
        last = current["head"]
        account = await self.ledger.get(ref.user_id)
        op_id, tombstone_id = new_id(), new_id()
        began = await self.begin_plain(ref.user_id, op_id, {"kind": "delete", "file": ref.key,
                                                            "version_id": tombstone_id, "blob_key": None},
                                       floor=account["change_seq"])
        seq = began["change_seq"]
        now = self.rt.clock.now()
        head = {"version_id": tombstone_id, "size": -1, "checksum": None, "deleted": True, "seq": seq,
                "updated_ms": next_update_ms(int(now.timestamp() * 1000), last["updated_ms"]),
                "client_ms": client_ms, "device_id": device_id}
        try:
            await self.store.add_version({"_id": tombstone_id, "user_id": ref.user_id, "type": ref.file_type,
                                          "name": ref.name, "blob_key": None, **head, **(extra or {}),
                                          "op": op_id, "created_at": now})
            event = self.rt.event(FileDeleted(file_type=ref.file_type, name=ref.name, category=ref.category,
                                              tombstone_version_id=tombstone_id,
                                              last_version_id=last["version_id"], size=last["size"],
                                              deleted_at=now, tombstone_update_ms=head["updated_ms"]), ref.user_id)
            after = await self.commit(ref, op_id, current, set(began["ops"]), last["version_id"], head, [event],
                                      reserved_bytes=0, reserved_files=0, delta_bytes=-last["size"], delta_files=-1,
                                      seq=seq, stored_delta=RECORD_BYTES)
        except HeadMoved:
            await self.settle_or_undo(ref.user_id, op_id)
            raise conflict(await self.store.head(ref))
        except BaseException:
            await self.settle_or_undo(ref.user_id, op_id)
            raise
        await self.bound.enforce(ref, RECORD_BYTES, after)
        await self.hand_to_trash([event])
        return head

    # ------------------------------------------------------------ delete one version permanently
    async def remove_version(self, ref: FileRef, version_id: str, conflict) -> dict[str, Any]:
        """Deletes one version for good. Removing the head makes the version before it the
        head (a delete marker included, as on the reference server), or leaves no file when
        it was the only one; usage follows. Emits file-versions-pruned for the version (trash
        drops the item of a removed delete marker). Removing the delete marker of a file in
        the trash brings its last version back — OsmAnd's "restore" — under the quota and
        plan rules of a restore, with file-restored; a delete marker that becomes the head
        again puts the file back in the trash (file-deleted)."""
        current = await self.store.head(ref)
        version = await self.store.version(ref, version_id)
        account = await self.ledger.get(ref.user_id)
        if version is None:
            raise NotFound(f"{ref.file_type}/{ref.name} has no version {version_id}", code="version_not_found")
        if version.get("op") in account["ops"]:
            raise Conflict(f"version {version_id} is still being written; try again in a moment",
                           code="version_in_flight")
        is_head = current is not None and current["head"]["version_id"] == version_id
        pruned = self.rt.event(FileVersionsPruned(file_type=ref.file_type, version_ids=[version_id],
                                                  freed_bytes=max(0, version["size"])), ref.user_id)
        op_id = new_id()
        op = {"kind": "remove-version", "file": ref.key, "version_id": version_id,
              "blob_key": version.get("blob_key"), "events": [pruned]}
        history = await self.store.history_for_removal(ref) if is_head else []
        below = head_after_removal(history, version_id) if is_head else None
        was_live = is_head and not current["head"]["deleted"]
        now_live = below is not None and not below.get("deleted")
        # a file that comes back to life takes quota like a restore: reserved before the change
        grows = max(0, below["size"]) if now_live and not was_live else 0
        revives = int(now_live and not was_live)
        quota, quota_field, max_files = 0, "quota_bytes", None
        if revives:
            entitlement = Entitlement.model_validate(account["entitlement"]) if account.get("entitlement") else None
            quota, quota_field = restore_quota(entitlement, ref.file_type)
            max_files = entitlement.max_files if quota_field == "quota_bytes" else None
        await self.ledger.ensure(ref.user_id)
        began = await self.ledger.begin(ref.user_id, op_id, op, quota=quota, max_files=max_files, bytes_=grows,
                                        files=revives, floor=account["change_seq"] if is_head else None,
                                        quota_field=quota_field)
        if began is None:
            latest = await self.ledger.get(ref.user_id)
            if latest.get("frozen") or not revives:
                raise Busy()
            if max_files is not None and latest["committed_files"] + 1 > max_files:
                raise file_count_exceeded(max_files, latest["file_count"])
            raise quota_exceeded(grows, latest["committed_bytes"], quota)
        if not is_head:
            await self._drop_version(version)
            await self.ledger.finish(ref.user_id, op_id, 0, 0, events=[pruned],
                                     stored_delta=-version_cost(version["size"]))
            self.written(user_id=ref.user_id)
            await self.hand_to_trash([pruned])
            return {"removed_version_id": version_id, "head": head_view(current) if current else None}

        new_head, events = None, []
        if below is not None:
            new_head = {"version_id": below["_id"], **{k: below.get(k) for k in (
                "size", "checksum", "updated_ms", "client_ms", "device_id", "deleted", "seq")}}
            if below.get("deleted"):
                # the file reads as deleted again, as it was before: back to the trash (an item
                # that still exists stays as it is: trash adds by the marker's id)
                before = live_version_before(history, below["_id"])
                events.append(self.rt.event(FileDeleted(
                    file_type=ref.file_type, name=ref.name, category=ref.category,
                    tombstone_version_id=below["_id"], last_version_id=(before or below)["_id"],
                    size=before["size"] if before else 0, deleted_at=below["created_at"],
                    tombstone_update_ms=below["updated_ms"]), ref.user_id))
            elif not was_live:
                events.append(self.rt.event(FileRestored(file_type=ref.file_type, name=ref.name,
                                                         version_id=below["_id"],
                                                         tombstone_version_id=version_id), ref.user_id))
        try:
            await self.commit(ref, op_id, current, set(began["ops"]), version_id, new_head, events,
                              reserved_bytes=grows, reserved_files=revives,
                              delta_bytes=(new_head["size"] if now_live else 0) - (current["head"]["size"] if was_live else 0),
                              delta_files=int(now_live) - int(was_live), seq=began["change_seq"], reverted=True,
                              finish_events=[pruned], stored_delta=-version_cost(version["size"]))
        except HeadMoved:
            await self.ledger.finish(ref.user_id, op_id, grows, revives)
            raise conflict(await self.store.head(ref))
        # the head no longer names it: a crash before these lines is completed by the reconciler
        await self._drop_version(version)
        await self.hand_to_trash([*events, pruned])
        after = await self.store.head(ref)
        return {"removed_version_id": version_id, "head": head_view(after) if after else None}

    async def _drop_version(self, version: dict[str, Any]) -> None:
        await self.store.remove_version(version["_id"])
        if version.get("blob_key"):
            await self.blobs.delete(version["blob_key"])

    # ------------------------------------------------------------ delete old versions
    async def prune(self, user_id: str, file_type: str | None) -> dict[str, Any]:
        """Keeps only the head of every live file (of one type, or all): every other version
        and its blob goes. Files in the trash (a delete marker as head) keep their versions
        until the trash purges them; files with an operation in flight are left alone."""
        op_id = new_id()
        await self.begin_plain(user_id, op_id, {"kind": "prune", "type": file_type})
        removed, freed = await self._prune(user_id, op_id, file_type)
        await self.ledger.finish(user_id, op_id, 0, 0)
        return {"type": file_type, "removed_versions": removed, "freed_bytes": freed}

    async def _prune(self, user_id: str, op_id: str, file_type: str | None) -> tuple[int, int]:
        """Pages through the account's versions (oldest change first); per page, the versions
        are read before the in-flight check, so an upload that starts meanwhile is seen busy."""
        types = [file_type] if file_type else None
        removed = freed = 0
        after = -1
        while True:
            versions = await self.store.versions_page(user_id, types, after, PRUNE_BATCH)
            if not versions:
                break
            after = max(v.get("seq") or 0 for v in versions)
            account = await self.ledger.get(user_id)
            busy_files = {op.get("file") for oid, op in (account.get("ops") or {}).items() if oid != op_id}
            keys = sorted({f"{user_id}/{v['type']}/{v['name']}" for v in versions})
            heads = {h["_id"]: h for h in await find_by_ids(self.store.heads, keys, {"_id": 1, "head": 1})}
            doomed = []
            for v in versions:
                key = f"{user_id}/{v['type']}/{v['name']}"
                head = heads.get(key)
                if head is None or not head.get("head") or head["head"]["deleted"] or key in busy_files:
                    continue
                if v["_id"] != head["head"]["version_id"]:
                    doomed.append(v)
            if not doomed:
                continue
            size = sum(max(0, v["size"]) for v in doomed)
            # the event first: a crash after it leaves versions the next prune removes
            await self.ledger.add_events(user_id, [self.rt.event(FileVersionsPruned(
                file_type=file_type, version_ids=[v["_id"] for v in doomed], freed_bytes=size), user_id)])
            self.written(user_id=user_id)
            await self.store.delete_versions([v["_id"] for v in doomed])
            await self.blobs.delete_many([v["blob_key"] for v in doomed if v.get("blob_key")])
            await self.ledger.add_stored(user_id, -sum(version_cost(v["size"]) for v in doomed))
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
        await self.blobs.delete_prefix(f"users/{user_id}/")
        await self.store.delete_everything_of(user_id)
        event = self.rt.event(FileVersionsPruned(file_type=None, version_ids=[], freed_bytes=freed,
                                                 everything=True), user_id)
        await self.ledger.clear_usage(user_id, op_id, [event], self.usage_event(user_id))
        self.written(user_id=user_id)
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
        in_flight = set(began["ops"])
        # one block of change numbers for all the markers, drawn in one atomic step
        last_seq = await self.ledger.draw(user_id, op_id, account["change_seq"], len(heads)) if heads else 0
        if last_seq is None:
            await self.ledger.finish(user_id, op_id, 0, 0)
            raise Busy()
        seqs = iter(range(last_seq - len(heads) + 1, last_seq + 1))
        deleted, skipped, delta_bytes, trashed = [], [], 0, []
        now = self.rt.clock.now()
        for current in heads:
            ref = ref_of(user_id, current)
            last = current["head"]
            tombstone_id, seq = new_id(), next(seqs)
            head = {"version_id": tombstone_id, "size": -1, "checksum": None, "deleted": True, "seq": seq,
                    "updated_ms": next_update_ms(int(now.timestamp() * 1000), last["updated_ms"]),
                    "client_ms": None, "device_id": device_id, **(marker_fields or {})}
            await self.store.add_version({"_id": tombstone_id, "user_id": user_id, "type": ref.file_type,
                                          "name": ref.name, "blob_key": None, **head, "op": op_id,
                                          "created_at": now})
            event = self.rt.event(FileDeleted(file_type=ref.file_type, name=ref.name, category=ref.category,
                                              tombstone_version_id=tombstone_id,
                                              last_version_id=last["version_id"], size=last["size"],
                                              deleted_at=now, tombstone_update_ms=head["updated_ms"]), user_id)
            keep = [e for e in current.get("_usage_pending", []) if e["op"] in in_flight]
            try:
                await self.store.change_head(ref, last["version_id"], head, [event],
                                             pending={"op": op_id, "bytes": -last["size"], "files": -1,
                                                      "stored": RECORD_BYTES},
                                             keep_pending=keep, changed_seq=seq)
            except HeadMoved:  # changed meanwhile by another device: left as it is now
                await self.store.remove_version(tombstone_id)
                skipped.append(ref.name)
                continue
            self.written(head_key=ref.key)
            deleted.append(ref.name)
            trashed.append(event)
            delta_bytes -= last["size"]
        await self.ledger.finish(user_id, op_id, 0, 0, delta_bytes, -len(deleted),
                                 usage_event=self.usage_event(user_id), stored_delta=RECORD_BYTES * len(deleted))
        self.written(user_id=user_id)
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
        heads = await self.store.heads_with_pending(user_id, op_id)
        mine = {h["_id"]: [e for e in h.get("_usage_pending", []) if e["op"] == op_id] for h in heads}
        delta_bytes = sum(e["bytes"] for entries in mine.values() for e in entries)
        delta_files = sum(e["files"] for entries in mine.values() for e in entries)
        stored_delta = sum(e.get("stored", 0) for entries in mine.values() for e in entries)
        events = op.get("events") or None
        if kind in ("upload", "delete") and not heads and op.get("version_id"):
            await self.store.remove_version(op["version_id"])  # the head never moved to it
            if op.get("blob_key"):  # S3 away (the upload failed for it): deleted once it is back
                await self.deferred.delete_or_defer(user_id, op["blob_key"])
            events = None
        elif kind == "remove-version":
            current = await self.store.head_doc(op["file"])
            still_head = current and current.get("head") and current["head"]["version_id"] == op["version_id"]
            if still_head:
                events = None
            else:
                await self.store.remove_version(op["version_id"])
                if op.get("blob_key"):
                    await self.blobs.delete(op["blob_key"])
        elif kind in ("delete-type", "grace-end"):
            moved = {h["head"]["version_id"] for h in heads if h.get("head")}
            strays = [v["_id"] for v in await self.store.versions_of_op(user_id, op_id) if v["_id"] not in moved]
            await self.store.delete_versions(strays)
        elif kind == "prune":
            await self._prune(user_id, op_id, op.get("type"))
        await self.ledger.finish(user_id, op_id, op.get("bytes", 0), op.get("files", 0), delta_bytes, delta_files,
                                 events, self.usage_event(user_id), stored_delta=stored_delta)
        for key, entries in mine.items():
            await self.store.drop_pending(key, entries)
        self.written(user_id=user_id)
