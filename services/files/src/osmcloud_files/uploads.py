"""Streamed uploads: plan and backup checks and the conflict rule before any byte is read,
the quota reserved before bytes are accepted (up front for a declared length, step by step
for a chunked body), the body streamed to S3 with size and checksum computed on the way,
then the version committed as a ledger operation (operations.py). Any failure leaves no
version, no blob and no reservation behind."""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from osmcloud_common.blobstore import PART_SIZE, BodyTooLarge, StoredBlob
from osmcloud_common.events import Entitlement, FileUploaded

from .domain import (
    FileRef,
    UploadNeed,
    blob_key,
    check_backup_enabled,
    check_may_upload,
    expected_head,
    growth_to_reserve,
    next_update_ms,
    upload_need,
)
from .errors import (
    Busy,
    FileCountExceeded,
    FilesError,
    FileTooLarge,
    QuotaExceeded,
    UploadAbandoned,
    UploadIncomplete,
    VersionConflict,
)
from .ledger import Ledger
from .model import Head, Usage, Version
from .operations import HeadChange, Operations, new_id
from .ports import Blobs, Clock, EventPublisher
from .storage_rule import version_cost
from .store import FilesStore, HeadMoved

GROW_STEP = 8 * 1024 * 1024      # a chunked body reserves quota in steps of this many bytes
RENEW_SECONDS = 60.0             # a long upload renews its operation this often (at most a tenth of its TTL)


def _no_extra() -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class UploadRequest:
    """One upload, whichever API received it: `read(n)` gives the file's content (at most n
    bytes, b"" at the end; a cut-off body raises UploadIncomplete), `declared_size` its length
    when known up front. `base` / `overwrite`: the conflict rule (domain.expected_head);
    `extra()` gives more fields for the version document once the body is stored."""
    ref: FileRef
    device_id: str
    read: Callable[[int], Awaitable[bytes]]
    declared_size: int | None
    base: str | None = None
    overwrite: bool = False
    client_ms: int | None = None
    extra: Callable[[], dict[str, Any]] = field(default=_no_extra)


@dataclass
class Reservation:
    """The bytes one upload holds; grows while a chunked body streams."""
    bytes: int


class Uploader:
    def __init__(self, clock: Clock, events: EventPublisher, store: FilesStore, ledger: Ledger, blobs: Blobs,
                 ops: Operations, max_upload_bytes: int) -> None:
        self.clock, self.events, self.store, self.ledger, self.blobs = clock, events, store, ledger, blobs
        self.ops, self.max_upload_bytes = ops, max_upload_bytes

    async def upload(self, req: UploadRequest) -> tuple[Head, dict[str, Any]]:
        """Returns (head, account after). VersionConflict when the head is not the one the
        upload is based on (before any byte is read, or when the head moved meanwhile)."""
        ref, declared, read = req.ref, req.declared_size, req.read
        for _ in range(3):  # the entitlement may change between reading it and reserving
            account = await self.ledger.get(ref.user_id)
            entitlement = Entitlement.model_validate(account["entitlement"]) if account.get("entitlement") else None
            check_may_upload(entitlement, ref.file_type)
            assert entitlement is not None  # check_may_upload refuses an account without a plan
            check_backup_enabled(ref.file_type, account.get("backup_off"))
            current = await self.store.file_head(ref)
            expected = expected_head(current, req.base, req.overwrite)
            last = current.head if current is not None else None
            was_live = last is not None and not last.deleted
            need = upload_need(declared, last.size if last is not None and was_live else 0, not was_live,
                               entitlement, self.max_upload_bytes)
            op_id, version_id = new_id(), new_id()
            key = blob_key(ref.user_id, version_id)
            small = declared is not None and declared <= PART_SIZE  # draws its change number right away
            began = await self.ledger.begin(
                ref.user_id, op_id, {"kind": "upload", "file": ref.key, "version_id": version_id,
                                     "blob_key": key},
                quota=entitlement.quota_bytes, max_files=entitlement.max_files, bytes_=need.bytes,
                files=need.files, floor=account["change_seq"] if small else None)
            if began is not None:
                break
            latest = await self.ledger.get(ref.user_id)
            if latest.get("entitlement") == account.get("entitlement"):
                raise self._refusal(latest, entitlement, need)
        else:
            raise Busy()

        reservation = Reservation(need.bytes)
        try:
            blob = await self._stream(read, declared, ref.user_id, op_id, entitlement.quota_bytes, need,
                                      key, reservation)
            seq = began["change_seq"] if small else await self.ledger.draw(ref.user_id, op_id, began["change_seq"])
            if seq is None:
                raise UploadAbandoned()
            now = self.clock.now()
            checksum = f"sha256:{blob.sha256}"
            head = Head(version_id, blob.size, checksum,
                        next_update_ms(int(now.timestamp() * 1000), last.updated_ms if last else None),
                        req.client_ms, req.device_id, deleted=False, seq=seq)
            await self.store.add_version(Version(ref.user_id, ref.file_type, ref.name, head, key, op_id, now,
                                                    req.extra()))
            event = self.events.event(FileUploaded(file_type=ref.file_type, name=ref.name, version_id=version_id,
                                                   size=blob.size, checksum=checksum,
                                                   device_id=req.device_id, updated_at=now), ref.user_id)
            after = await self.ops.commit(HeadChange(
                ref, op_id, current, frozenset(began["ops"]), expected, head, [event],
                reserved=Usage(reservation.bytes, need.files),
                delta=Usage(blob.size - need.old_size, need.files, version_cost(blob.size)), seq=seq, began=began))
        except HeadMoved:
            await self.ops.settle_or_undo(ref.user_id, op_id)
            raise VersionConflict(await self.store.head(ref)) from None
        except BaseException:
            await self.ops.settle_or_undo(ref.user_id, op_id)
            raise
        # before answering: what this upload put above the storage limit is freed already
        await self.ops.bound.enforce(ref, version_cost(blob.size), after)
        if last is not None and last.deleted:
            await self.ops.hand_to_trash([event])  # the file leaves the trash page at once
        return head, after

    @staticmethod
    def _refusal(account: dict[str, Any], entitlement: Entitlement, need: UploadNeed) -> FilesError:
        if account.get("frozen"):
            return Busy()
        if need.files and entitlement.max_files is not None and \
                account["committed_files"] + need.files > entitlement.max_files:
            return FileCountExceeded(entitlement.max_files, account["file_count"])
        return QuotaExceeded(need.bytes, account["committed_bytes"], entitlement.quota_bytes)

    async def _stream(self, source: Callable[[int], Awaitable[bytes]], declared: int | None, user_id: str,
                      op_id: str, quota: int, need: UploadNeed, key: str, reservation: Reservation) -> StoredBlob:
        received = 0
        renewed = time.monotonic()

        async def read(n: int) -> bytes:
            nonlocal received, renewed
            chunk = await source(n)
            if not chunk:
                return chunk
            received += len(chunk)
            if declared is None:  # reserve before accepting what a chunked body brought
                more = growth_to_reserve(received, need.old_size, reservation.bytes, GROW_STEP, need.limit)
                if more:
                    if received > need.limit:
                        raise BodyTooLarge(need.limit)
                    least = received - need.old_size - reservation.bytes  # near the quota: just what came
                    if not await self.ledger.grow(user_id, op_id, quota, more):
                        if least >= more or not await self.ledger.grow(user_id, op_id, quota, least):
                            latest = await self.ledger.get(user_id)
                            raise QuotaExceeded(received - need.old_size,
                                                latest["committed_bytes"] - reservation.bytes, quota)
                        more = least
                    reservation.bytes += more
                    renewed = time.monotonic()
            if time.monotonic() - renewed > min(RENEW_SECONDS, self.ledger.ttl / 10):
                await self.ledger.renew(user_id, op_id)
                renewed = time.monotonic()
            return chunk

        try:
            blob = await self.blobs.put_stream(key, read, limit=need.limit)
        except BodyTooLarge:
            raise FileTooLarge(f"the body is larger than the {need.limit} bytes one file may have",
                               details={"max_file_bytes": need.limit}) from None
        if declared is not None and blob.size != declared:
            raise UploadIncomplete(f"the body has {blob.size} bytes but Content-Length said {declared}")
        return blob
