"""Bulk upload: many files in one request, each judged on its own (docs/bulk-upload.md,
docs/adr/0012-bulk-upload.md).

The files arrive one after the other as a stream (`BulkPart`s from the API's multipart
reader). Small ones are gathered into batches, each batch one ledger operation
(bulk_batch.py); larger ones go through the single upload (uploads.Uploader). Either way each
file is judged by the single upload's rules (plan, backup switch, conflict rule, per-file
size, quota reserved before its bytes are stored) with the same version, usage and events,
and its refusal becomes that file's result while the next file goes on. Nothing of a refused
file is kept; the rest of its bytes are read and dropped (`BulkPart.skip`) to reach the next
file. Nothing of a request is held in memory but the batch being gathered, the part being
read and the results.

A request stops early (its files so far keep their results) when it has more files than the
bound, when its body is malformed or carries no file, or when a refused file's rest is larger
than any file may be: `BulkOutcome.stopped` says why.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .bulk_batch import BATCH_BYTES, BATCH_FILES, SMALL_FILE, BatchUploader, SmallFile
from .domain import FileRef, parse_file_ref
from .errors import BulkBodyMalformed, FilesError, InvalidName, TooManyFiles, UploadIncomplete
from .model import Head
from .readers import memory_reader, prefixed, read_up_to
from .uploads import Uploader, UploadRequest


@dataclass(frozen=True)
class BulkPart:
    """One file of a bulk upload as the API received it: `target` is "TYPE/name" (None when
    the part named no file), `read(n)` gives its content (BulkBodyMalformed when the body is
    broken or cut off), `declared_size` its length when the part declared one; `base`,
    `overwrite` and `client_ms` as for a single upload. `skip(limit)` reads and drops what is
    left of the part, at most `limit` bytes (False: more was left)."""
    target: str | None
    read: Callable[[int], Awaitable[bytes]]
    declared_size: int | None
    base: str | None
    overwrite: bool
    client_ms: int | None
    skip: Callable[[int], Awaitable[bool]]


@dataclass(frozen=True)
class FileResult:
    """What became of one file: its new head, or the refusal (nothing of it was kept)."""
    index: int
    file_type: str | None
    name: str | None
    head: Head | None = None
    category: str | None = None
    error: FilesError | None = None


@dataclass(frozen=True)
class BulkOutcome:
    results: list[FileResult]
    account: dict[str, Any] | None        # the ledger document after the last stored file
    stopped: FilesError | None = None     # why the request ended before its last file


def split_target(target: str | None) -> tuple[str | None, str | None]:
    """"TYPE/name" → (TYPE, name); the name may hold folders."""
    if not target or "/" not in target:
        return target or None, None
    file_type, _, name = target.partition("/")
    return file_type, name


@dataclass
class _Request:
    """One bulk request's state: results by part index, the batch being gathered."""
    user_id: str
    device_id: str
    extra: Callable[[], dict[str, Any]]
    results: dict[int, FileResult] = field(default_factory=dict)
    account: dict[str, Any] | None = None
    batch: list[SmallFile] = field(default_factory=list)
    batch_bytes: int = 0

    def outcome(self, stopped: FilesError | None = None) -> BulkOutcome:
        return BulkOutcome([self.results[i] for i in sorted(self.results)], self.account, stopped)


class BulkUploads:
    """Small files (up to SMALL_FILE, whole in memory) are gathered into batches of at most
    BATCH_FILES files and BATCH_BYTES bytes, each one ledger operation (bulk_batch.py); larger
    files, and the files of a batch whose operation could not begin, go through the single
    upload. A batch is written before a larger file or a second file of the same name, and
    before the answer, so the effects follow the order of the parts."""

    def __init__(self, uploader: Uploader, max_files: int, batches: BatchUploader | None = None) -> None:
        self.uploader, self.max_files, self.batches = uploader, max_files, batches

    async def upload(self, user_id: str, device_id: str, parts: AsyncIterator[BulkPart],
                     extra: Callable[[], dict[str, Any]]) -> BulkOutcome:
        """`parts` raises BulkBodyMalformed when the body cannot be read on; `extra()` gives
        more fields for each version document (as UploadRequest.extra)."""
        req = _Request(user_id, device_id, extra)
        skip_limit = self.uploader.max_upload_bytes
        index = 0
        try:
            async for part in parts:
                if index >= self.max_files:
                    await self._flush(req)
                    return req.outcome(TooManyFiles(self.max_files))
                await self._one(req, index, part)
                index += 1
                if not await part.skip(skip_limit):
                    await self._flush(req)
                    return req.outcome(BulkBodyMalformed(
                        f"file {index} was refused and the rest of it is larger than the {skip_limit} bytes any "
                        f"file may have; the request was not read further"))
            await self._flush(req)
            if index == 0:
                return req.outcome(BulkBodyMalformed("the request carries no file: send at least one part, each "
                                                     "naming its file as TYPE/name in its filename"))
        except BulkBodyMalformed as exc:
            await self._flush(req)
            return req.outcome(exc)
        return req.outcome()

    async def _one(self, req: _Request, index: int, part: BulkPart) -> None:
        file_type, name = split_target(part.target)
        try:
            if file_type is None or name is None:
                raise InvalidName("each part must name its file as TYPE/name in the filename of its "
                                  "Content-Disposition (e.g. filename=\"GPX/tracks/a.gpx\")")
            ref = parse_file_ref(req.user_id, file_type, name)
            read = part.read
            if self.batches is not None and (part.declared_size is None or part.declared_size <= SMALL_FILE):
                data, whole = await read_up_to(read, SMALL_FILE)
                if whole:
                    if part.declared_size is not None and part.declared_size != len(data):
                        raise UploadIncomplete(f"the file has {len(data)} bytes but X-File-Size said "
                                               f"{part.declared_size}")
                    await self._gather(req, SmallFile(index, ref, data, part.base, part.overwrite, part.client_ms,
                                                      req.device_id, req.extra()))
                    return
                read = prefixed(data, read)  # larger: streamed, what was read first included
            await self._flush(req)
            await self._single(req, index, ref, read, part.declared_size, part.base, part.overwrite, part.client_ms)
        except BulkBodyMalformed:
            raise  # the body itself is broken (or cut off): no file after this one can be read
        except FilesError as exc:
            req.results[index] = FileResult(index, file_type, name, error=exc)

    async def _single(self, req: _Request, index: int, ref: FileRef, read: Callable[[int], Awaitable[bytes]],
                      declared: int | None, base: str | None, overwrite: bool, client_ms: int | None) -> None:
        try:
            head, after = await self.uploader.upload(UploadRequest(ref, req.device_id, read, declared, base, overwrite,
                                                                   client_ms, extra=req.extra))
        except BulkBodyMalformed:
            raise
        except FilesError as exc:
            req.results[index] = FileResult(index, ref.file_type, ref.name, error=exc)
            return
        req.results[index] = FileResult(index, ref.file_type, ref.name, head=head, category=ref.category)
        req.account = after

    async def _gather(self, req: _Request, file: SmallFile) -> None:
        if any(f.ref.key == file.ref.key for f in req.batch) or len(req.batch) >= BATCH_FILES or \
                req.batch_bytes + len(file.data) > BATCH_BYTES:
            await self._flush(req)
        req.batch.append(file)
        req.batch_bytes += len(file.data)

    async def _flush(self, req: _Request) -> None:
        """Writes the gathered batch (one ledger operation) and records its results."""
        batch, req.batch, req.batch_bytes = req.batch, [], 0
        if not batch:
            return
        assert self.batches is not None
        try:
            out = await self.batches.upload(req.user_id, batch)
        except FilesError as exc:  # the whole batch was undone (e.g. it stalled past its time-to-live)
            for f in batch:
                req.results[f.index] = FileResult(f.index, f.ref.file_type, f.ref.name, error=exc)
            return
        for f in batch:
            if f.index in out.heads:
                req.results[f.index] = FileResult(f.index, f.ref.file_type, f.ref.name, head=out.heads[f.index],
                                                  category=f.ref.category)
            elif f.index in out.refused:
                req.results[f.index] = FileResult(f.index, f.ref.file_type, f.ref.name, error=out.refused[f.index])
        req.account = out.account or req.account
        for f in out.retry:  # the plan or the usage changed since the batch was judged: one by one
            await self._single(req, f.index, f.ref, memory_reader(f.data), len(f.data), f.base, f.overwrite,
                               f.client_ms)

