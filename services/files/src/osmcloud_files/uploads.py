"""Streamed uploads: plan and backup checks and the conflict rule before any byte is read,
the quota reserved before bytes are accepted (up front for a declared length, step by step
for a chunked body), the body streamed to S3 with size and checksum computed on the way,
then the version committed as a ledger operation (operations.py). Any failure leaves no
version, no blob and no reservation behind."""

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.client_exceptions import ClientPayloadError
from aiohttp.http_exceptions import HttpProcessingError

from osmcloud_common.blobstore import PART_SIZE, BlobStore, BodyTooLarge
from osmcloud_common.errors import ApiError, BadRequest, PayloadTooLarge
from osmcloud_common.events import Entitlement, FileUploaded
from osmcloud_common.runtime import Runtime

from .domain import (FileRef, UploadNeed, check_backup_enabled, check_may_upload, file_count_exceeded,
                     growth_to_reserve, next_update_ms, quota_exceeded, upload_need)
from .operations import Busy, Operations
from .storage_rule import version_cost
from .store import FilesStore, HeadMoved

GROW_STEP = 8 * 1024 * 1024      # a chunked body reserves quota in steps of this many bytes
RENEW_SECONDS = 60.0             # a long upload renews its operation this often (at most a tenth of its TTL)
CUT_OFF = (ClientPayloadError, ConnectionError, HttpProcessingError)


@dataclass
class Reservation:
    """The bytes one upload holds; grows while a chunked body streams."""
    bytes: int


class Uploader:
    def __init__(self, runtime: Runtime, store: FilesStore, blobs: BlobStore, ops: Operations,
                 max_upload_bytes: int) -> None:
        self.rt, self.store, self.blobs, self.ops, self.ledger = runtime, store, blobs, ops, store.ledger
        self.max_upload_bytes = max_upload_bytes

    async def upload(self, request: web.Request, ref: FileRef, device_id: str, base: str | None,
                     overwrite: bool, client_ms: int | None, expected_head, conflict, *,
                     source: Callable[[int], Awaitable[bytes]] | None = None,
                     extra: Callable[[], dict[str, Any]] | None = None) -> tuple[dict, dict]:
        """Returns (head, account after). `expected_head(current, base, overwrite)` applies the
        conflict rule; `conflict(head_doc)` builds the 409. `source(n)` replaces the request
        body as the file's content (then of unknown length: /userdata/ gunzips a multipart
        part); `extra()` gives more fields for the version document once the body is stored."""
        declared = request.content_length if source is None else None
        read = source or request.content.read
        for _ in range(3):  # the entitlement may change between reading it and reserving
            account = await self.ledger.get(ref.user_id)
            entitlement = Entitlement.model_validate(account["entitlement"]) if account.get("entitlement") else None
            check_may_upload(entitlement, ref.file_type)
            check_backup_enabled(ref.file_type, account.get("backup_off"))
            current = await self.store.head(ref)
            expected = expected_head(current, base, overwrite)
            was_live = current is not None and not current["head"]["deleted"]
            need = upload_need(declared, current["head"]["size"] if was_live else 0, not was_live, entitlement,
                               self.max_upload_bytes)
            op_id, version_id = uuid.uuid4().hex, uuid.uuid4().hex
            blob_key = f"users/{ref.user_id}/{version_id}"
            small = declared is not None and declared <= PART_SIZE  # draws its change number right away
            began = await self.ledger.begin(
                ref.user_id, op_id, {"kind": "upload", "file": ref.key, "version_id": version_id,
                                     "blob_key": blob_key},
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
                                      blob_key, reservation)
            seq = began["change_seq"] if small else await self.ledger.draw(ref.user_id, op_id, began["change_seq"])
            if seq is None:
                raise ApiError("the upload took too long or all data of the account was deleted meanwhile; "
                               "upload again", code="upload_abandoned", status=409)
            now = self.rt.clock.now()
            head = {"version_id": version_id, "size": blob.size, "checksum": f"sha256:{blob.sha256}",
                    "updated_ms": next_update_ms(int(now.timestamp() * 1000),
                                                 current["head"]["updated_ms"] if current else None),
                    "client_ms": client_ms, "device_id": device_id, "deleted": False, "seq": seq}
            await self.store.add_version({"_id": version_id, "user_id": ref.user_id, "type": ref.file_type,
                                          "name": ref.name, "blob_key": blob_key, **head,
                                          **(extra() if extra else {}), "op": op_id, "created_at": now})
            event = self.rt.event(FileUploaded(file_type=ref.file_type, name=ref.name, version_id=version_id,
                                               size=blob.size, checksum=head["checksum"], device_id=device_id,
                                               updated_at=now), ref.user_id)
            after = await self.ops.commit(
                ref, op_id, current, set(began["ops"]), expected, head, [event], reserved_bytes=reservation.bytes,
                reserved_files=need.files, delta_bytes=blob.size - need.old_size, delta_files=need.files, seq=seq,
                stored_delta=version_cost(blob.size))
        except HeadMoved:
            await self.ops.settle_or_undo(ref.user_id, op_id)
            raise conflict(await self.store.head(ref))
        except BaseException:
            await self.ops.settle_or_undo(ref.user_id, op_id)
            raise
        # before answering: what this upload put above the storage limit is freed already
        await self.ops.bound.enforce(ref, version_cost(blob.size), after)
        if current is not None and current["head"]["deleted"]:
            await self.ops.hand_to_trash([event])  # the file leaves the trash page at once
        return head, after

    def _refusal(self, account: dict[str, Any], entitlement: Entitlement, need: UploadNeed) -> ApiError:
        if account.get("frozen"):
            return Busy()
        if need.files and entitlement.max_files is not None and \
                account["committed_files"] + need.files > entitlement.max_files:
            return file_count_exceeded(entitlement.max_files, account["file_count"])
        return quota_exceeded(need.bytes, account["committed_bytes"], entitlement.quota_bytes)

    async def _stream(self, source: Callable[[int], Awaitable[bytes]], declared: int | None, user_id: str,
                      op_id: str, quota: int, need: UploadNeed, blob_key: str, reservation: "Reservation"):
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
                            raise quota_exceeded(received - need.old_size,
                                                 latest["committed_bytes"] - reservation.bytes, quota)
                        more = least
                    reservation.bytes += more
                    renewed = time.monotonic()
            if time.monotonic() - renewed > min(RENEW_SECONDS, self.ledger.ttl / 10):
                await self.ledger.renew(user_id, op_id)
                renewed = time.monotonic()
            return chunk

        try:
            blob = await self.blobs.put_stream(blob_key, read, limit=need.limit)
        except BodyTooLarge:
            raise PayloadTooLarge(f"the body is larger than the {need.limit} bytes one file may have",
                                  code="file_too_large", details={"max_file_bytes": need.limit})
        except CUT_OFF as exc:
            raise BadRequest(f"the upload was cut off before it ended ({exc.__class__.__name__})",
                             code="upload_incomplete")
        if declared is not None and blob.size != declared:
            raise BadRequest(f"the body has {blob.size} bytes but Content-Length said {declared}",
                             code="upload_incomplete")
        return blob
