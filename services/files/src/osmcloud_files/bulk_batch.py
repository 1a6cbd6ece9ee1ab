"""A batch of small files of one bulk upload as ONE ledger operation (kind "bulk-upload"),
so that the database work per file drops (docs/adr/0012-bulk-upload.md):

  1. judge: one read of the account and one of the files' heads; each file against the plan,
     the backup switches, the conflict rule, the per-file limit and the quota (counting the
     files accepted before it in the batch); a refused file gets its error, nothing else;
  2. begin: one operation reserving the accepted files' bytes and files at once and drawing
     their change numbers; it records its files and their new versions (`targets`);
  3. the blobs, concurrently (at most PARALLEL_PUTS), then the version documents in one insert;
  4. the heads: new files' head documents in one insert, each with its file-uploaded event and
     its pending usage entry; existing files' heads each by a conditional move (a head moved
     meanwhile: that file's result is a conflict, its version and blob go);
  5. finish: one settlement with the total usage change and one storage-usage-changed.

A crash at any point is finished or undone by the reconciler (`Operations.recover`, kind
"bulk-upload"): a head that carries the operation's pending entry was moved and is settled;
the operation's other versions and blobs are strays and go. When `begin` is refused (the plan
or the usage changed since the judging) the batch is handed back, and each of its files goes
through the single upload."""

import asyncio
import contextvars
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from osmcloud_common.blobstore import StoredBlob
from osmcloud_common.events import Entitlement, FileUploaded

from .domain import (
    FileRef,
    blob_key,
    check_backup_enabled,
    check_may_upload,
    expected_head,
    next_update_ms,
    upload_need,
)
from .errors import Busy, ChangeAbandoned, FileCountExceeded, FilesError, QuotaExceeded, VersionConflict
from .ledger import Ledger
from .model import FileHead, Head, Usage, Version
from .operations import Operations, new_id
from .ports import Blobs, Clock, EventPublisher
from .readers import memory_reader
from .storage_rule import version_cost
from .store import FilesStore, HeadMoved

PARALLEL_PUTS = 8
SMALL_FILE = 256 * 1024        # a file up to this size may go in a batch, whole in memory
BATCH_FILES = 200              # most files of one batch
BATCH_BYTES = 4 * 1024 * 1024  # most bytes a batch holds in memory


@dataclass(frozen=True)
class SmallFile:
    """A file of a batch, its content in memory (bounded by the batch's byte limit), with the
    device that sent it and `extra` fields for its version document. `context`: the request's
    context variables, when the batch is written outside that request (upload_groups.py), so
    the file's event names its own request."""
    index: int
    ref: FileRef
    data: bytes
    base: str | None
    overwrite: bool
    client_ms: int | None
    device_id: str
    extra: Mapping[str, Any]
    context: contextvars.Context | None = None


@dataclass
class _Accepted:
    file: SmallFile
    current: FileHead | None
    expected: str | None
    old_size: int
    files: int
    limit: int
    version_id: str = field(default_factory=new_id)
    head: Head | None = None
    event: dict[str, Any] | None = None
    revives: bool = False


@dataclass
class BatchOutcome:
    """Per file index: its new head or its refusal; `account` after the settlement (None when
    no file was stored); `retry`: files to send through the single upload instead (the
    operation could not begin)."""
    heads: dict[int, Head] = field(default_factory=dict)
    refused: dict[int, FilesError] = field(default_factory=dict)
    account: dict[str, Any] | None = None
    retry: list[SmallFile] = field(default_factory=list)


class BatchUploader:
    def __init__(self, clock: Clock, events: EventPublisher, store: FilesStore, ledger: Ledger, blobs: Blobs,
                 ops: Operations, max_upload_bytes: int) -> None:
        self.clock, self.events, self.store, self.ledger, self.blobs = clock, events, store, ledger, blobs
        self.ops, self.max_upload_bytes = ops, max_upload_bytes

    async def upload(self, user_id: str, files: list[SmallFile]) -> BatchOutcome:
        """`files`: distinct files of this account, with distinct indexes."""
        outcome = BatchOutcome()
        account = await self.ledger.get(user_id)
        accepted = self._judge(account, files, await self.store.file_heads([f.ref for f in files]), outcome)
        if not accepted:
            return outcome
        entitlement = Entitlement.model_validate(account["entitlement"])
        op_id = new_id()
        total = Usage(sum(max(0, len(a.file.data) - a.old_size) for a in accepted), sum(a.files for a in accepted))
        began = await self.ledger.begin(
            user_id, op_id, {"kind": "bulk-upload",
                                    "targets": [{"key": a.file.ref.key, "version_id": a.version_id} for a in accepted]},
            quota=entitlement.quota_bytes, max_files=entitlement.max_files, bytes_=total.bytes, files=total.files,
            floor=account["change_seq"], draws=len(accepted))
        if began is None:
            outcome.retry = [a.file for a in accepted]
            return outcome
        try:
            after = await self._write(user_id, op_id, began, accepted, total, outcome)
        except BaseException:
            await self.ops.settle_or_undo(user_id, op_id)
            raise
        outcome.account = after
        stored = [a for a in accepted if a.file.index in outcome.heads]
        revived = [a.event for a in stored if a.revives and a.event is not None]
        if revived:
            await self.ops.hand_to_trash(revived)  # the files leave the trash page at once
        for a in stored:  # before answering: what the batch put above the storage limit is freed
            assert a.head is not None
            await self.ops.bound.enforce(a.file.ref, version_cost(a.head.size), after)
        return outcome

    def _judge(self, account: dict[str, Any], files: list[SmallFile], heads: dict[str, FileHead],
               outcome: BatchOutcome) -> list[_Accepted]:
        entitlement = Entitlement.model_validate(account["entitlement"]) if account.get("entitlement") else None
        committed_bytes, committed_files = account["committed_bytes"], account["committed_files"]
        accepted: list[_Accepted] = []
        for f in files:
            try:
                if account.get("frozen"):
                    raise Busy()
                check_may_upload(entitlement, f.ref.file_type)
                assert entitlement is not None  # check_may_upload refuses an account without a plan
                check_backup_enabled(f.ref.file_type, account.get("backup_off"))
                current = heads.get(f.ref.key)
                expected = expected_head(current, f.base, f.overwrite)
                last = current.head if current is not None else None
                was_live = last is not None and not last.deleted
                need = upload_need(len(f.data), last.size if last is not None and was_live else 0, not was_live,
                                   entitlement, self.max_upload_bytes)
                if need.bytes and committed_bytes + need.bytes > entitlement.quota_bytes:
                    raise QuotaExceeded(need.bytes, committed_bytes, entitlement.quota_bytes)
                if need.files and entitlement.max_files is not None and \
                        committed_files + need.files > entitlement.max_files:
                    raise FileCountExceeded(entitlement.max_files, committed_files)
            except FilesError as exc:
                outcome.refused[f.index] = exc
                continue
            committed_bytes += need.bytes
            committed_files += need.files
            accepted.append(_Accepted(f, current, expected, need.old_size, need.files, need.limit,
                                      revives=last is not None and last.deleted))
        return accepted

    async def _write(self, user_id: str, op_id: str, began: dict[str, Any], accepted: list[_Accepted],
                     total: Usage, outcome: BatchOutcome) -> dict[str, Any]:
        gate = asyncio.Semaphore(PARALLEL_PUTS)

        async def put(a: _Accepted) -> StoredBlob:
            async with gate:
                return await self.blobs.put_stream(blob_key(user_id, a.version_id), memory_reader(a.file.data),
                                                   limit=a.limit)
        # every PUT ends before a failure is raised: the undo must not race a PUT still running
        stored = await asyncio.gather(*(put(a) for a in accepted), return_exceptions=True)
        failed = [b for b in stored if isinstance(b, BaseException)]
        if failed:
            raise failed[0]
        blobs = [b for b in stored if isinstance(b, StoredBlob)]
        now = self.clock.now()
        now_ms = int(now.timestamp() * 1000)
        first_seq = began["change_seq"] - len(accepted) + 1
        versions = []
        for i, (a, blob) in enumerate(zip(accepted, blobs, strict=True)):
            last = a.current.head if a.current is not None else None
            checksum = f"sha256:{blob.sha256}"
            device_id = a.file.device_id
            a.head = Head(a.version_id, blob.size, checksum, next_update_ms(now_ms, last.updated_ms if last else None),
                          a.file.client_ms, device_id, deleted=False, seq=first_seq + i)
            uploaded = FileUploaded(file_type=a.file.ref.file_type, name=a.file.ref.name, version_id=a.version_id,
                                    size=blob.size, checksum=checksum, device_id=device_id, updated_at=now)
            a.event = (a.file.context.run(self.events.event, uploaded, user_id) if a.file.context is not None
                       else self.events.event(uploaded, user_id))
            versions.append(Version(user_id, a.file.ref.file_type, a.file.ref.name, a.head,
                                    blob_key(user_id, a.version_id), op_id, now, dict(a.file.extra)))
        await self.store.add_versions(versions)

        if not await self.ledger.hold(user_id, op_id):
            # taken for dead and undone meanwhile (a stall longer than its time-to-live): the
            # reconciler removed what it found then; what was written since goes now
            await self.store.remove_versions_of(user_id, op_id, [a.version_id for a in accepted])
            await self.blobs.delete_many([blob_key(user_id, a.version_id) for a in accepted])
            raise ChangeAbandoned()
        in_flight = frozenset(began["ops"])
        moved = await self._move_heads(op_id, accepted, in_flight)
        lost = [a for a in accepted if a.file.ref.key not in moved]
        for a in lost:
            outcome.refused[a.file.index] = VersionConflict(await self.store.head(a.file.ref))
        for a in accepted:
            if a.file.ref.key in moved:
                assert a.head is not None
                outcome.heads[a.file.index] = a.head
        if lost:  # their versions and blobs go; the reconciler would take them for strays too
            keys = await self.store.remove_versions_of(user_id, op_id, [a.version_id for a in lost])
            await self.blobs.delete_many(keys)
        delta = Usage(sum(m.bytes for m in moved.values()), sum(m.files for m in moved.values()),
                      sum(m.stored for m in moved.values()))
        after = await self.ledger.finish(user_id, op_id, total, delta, usage_event=self.ops.usage_event(user_id),
                                         began=began)
        if after is None:  # the reconciler finished it first (the op had expired)
            after = await self.ledger.get(user_id)
        self.events.account_written(user_id)
        return after

    async def _move_heads(self, op_id: str, accepted: list[_Accepted], in_flight: frozenset[str]
                          ) -> dict[str, Usage]:
        """Moves each file's head to its new version; returns the usage change per moved file."""
        def change(a: _Accepted) -> Usage:
            assert a.head is not None
            return Usage(a.head.size - a.old_size, a.files, version_cost(a.head.size))

        def pending(a: _Accepted) -> dict[str, Any]:
            c = change(a)
            return {"op": op_id, "bytes": c.bytes, "files": c.files, "stored": c.stored}

        moved: dict[str, Usage] = {}
        new = [a for a in accepted if a.current is None]
        inserted = await self.store.insert_heads([(a.file.ref, a.head, [a.event], pending(a), a.head.seq or 0)
                                                  for a in new if a.head is not None and a.event is not None])
        for a in new:
            if a.file.ref.key in inserted:
                moved[a.file.ref.key] = change(a)
                self.events.head_written(a.file.ref.key, [a.event] if a.event else None)
        for a in accepted:
            if a.file.ref.key in moved:
                continue
            assert a.head is not None and a.event is not None
            keep = a.current.pending_of(in_flight, but=op_id) if a.current is not None else []
            try:
                outbox = await self.store.change_head(a.file.ref, a.expected, a.head, [a.event], pending=pending(a),
                                                      keep_pending=keep, changed_seq=a.head.seq)
            except HeadMoved:
                continue
            self.events.head_written(a.file.ref.key, outbox)
            moved[a.file.ref.key] = change(a)
        return moved
