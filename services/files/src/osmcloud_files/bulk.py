"""Bulk upload: many files in one request, each judged on its own (docs/bulk-upload.md,
docs/adr/0012-bulk-upload.md).

The files arrive one after the other as a stream (`BulkPart`s from the API's multipart
reader); each goes through the single upload (uploads.Uploader: plan, backup switch, conflict
rule, per-file size, quota reserved before bytes are accepted, the same version, usage and
events), and its refusal becomes that file's result while the next file goes on. What a
refused file had written is undone by the single upload itself; the rest of its bytes are
read and dropped (`BulkPart.skip`) to reach the next file. Nothing of a request is held in
memory but the part being read and the results.

A request stops early (its files so far keep their results) when it has more files than the
bound, when its body is malformed, or when a refused file's rest is larger than any file may
be: `BulkOutcome.stopped` says why."""

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .domain import FileRef, parse_file_ref
from .errors import BulkBodyMalformed, FilesError, InvalidName, TooManyFiles
from .model import Head
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


class BulkUploads:
    def __init__(self, uploader: Uploader, max_files: int) -> None:
        self.uploader, self.max_files = uploader, max_files

    async def upload(self, user_id: str, device_id: str, parts: AsyncIterator[BulkPart],
                     extra: Callable[[], dict[str, Any]]) -> BulkOutcome:
        """`parts` raises BulkBodyMalformed when the body cannot be read on; `extra()` gives
        more fields for each version document (as UploadRequest.extra)."""
        results: list[FileResult] = []
        account: dict[str, Any] | None = None
        skip_limit = self.uploader.max_upload_bytes
        try:
            async for part in parts:
                if len(results) >= self.max_files:
                    return BulkOutcome(results, account, TooManyFiles(self.max_files))
                result, after = await self._one(len(results), user_id, device_id, part, extra)
                results.append(result)
                account = after or account
                if not await part.skip(skip_limit):
                    return BulkOutcome(results, account, BulkBodyMalformed(
                        f"file {result.index + 1} was refused and the rest of it is larger than the "
                        f"{skip_limit} bytes any file may have; the request was not read further"))
        except BulkBodyMalformed as exc:
            return BulkOutcome(results, account, exc)
        return BulkOutcome(results, account)

    async def _one(self, index: int, user_id: str, device_id: str, part: BulkPart,
                   extra: Callable[[], dict[str, Any]]) -> tuple[FileResult, dict[str, Any] | None]:
        file_type, name = split_target(part.target)
        try:
            if file_type is None or name is None:
                raise InvalidName("each part must name its file as TYPE/name in the filename of its "
                                  "Content-Disposition (e.g. filename=\"GPX/tracks/a.gpx\")")
            ref: FileRef = parse_file_ref(user_id, file_type, name)
            head, after = await self.uploader.upload(UploadRequest(
                ref, device_id, part.read, part.declared_size, part.base, part.overwrite, part.client_ms,
                extra=extra))
        except BulkBodyMalformed:
            raise  # the body itself is broken (or cut off): no file after this one can be read
        except FilesError as exc:
            return FileResult(index, file_type, name, error=exc), None
        return FileResult(index, file_type, name, head=head, category=ref.category), after
