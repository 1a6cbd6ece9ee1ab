"""POST /api/files/bulk: many files in one multipart/form-data request (bulk.py judges each;
docs/bulk-upload.md describes the request and the answer). This module only reads the body,
part by part as it arrives (never whole), and shapes the answer."""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from osmcloud_common.errors import ApiError, BadRequest
from osmcloud_common.http import identity

from .bodies import CUT_OFF
from .bulk import BulkPart, BulkUploads, FileResult
from .errors import BulkBodyMalformed
from .native_errors import api_error
from .routes import device_num
from .views import usage_view, version_view

SKIP_CHUNK = 256 * 1024  # what a refused file's rest is read (and dropped) in
MALFORMED = (ValueError, AssertionError, HttpProcessingError)  # what aiohttp's multipart reader raises

HOW = ("send the files as multipart/form-data, one part per file, each naming its file as TYPE/name in the "
       "filename of its Content-Disposition (docs/bulk-upload.md)")


def _truthy(raw: str | None) -> bool:
    return (raw or "").strip().lower() in ("1", "true", "yes")


def _query_flag(request: web.Request, name: str) -> bool:
    raw = (request.query.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise BadRequest(f"query parameter '{name}' must be true or false, got '{raw}'")


def _int_or_none(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() else None


def _guarded(part: BodyPartReader, what: str) -> Callable[[int], Awaitable[bytes]]:
    """A part's reads, with a broken or cut-off body as BulkBodyMalformed: no file after it
    can be read. aiohttp's reader gives b"" when the body ends before the part's closing
    boundary; that is a cut-off too, never the end of the file."""
    async def reader(n: int) -> bytes:
        try:
            chunk = await part.read_chunk(n)
        except MALFORMED as exc:
            raise BulkBodyMalformed(f"the multipart body is malformed in {what} ({exc}); {HOW}") from exc
        except CUT_OFF as exc:
            raise BulkBodyMalformed(f"the body was cut off in {what} ({exc.__class__.__name__})") from exc
        if not chunk and not part.at_eof():
            raise BulkBodyMalformed(f"the body ended in the middle of {what}, before its closing boundary")
        return chunk
    return reader


def _part(part: BodyPartReader, index: int, overwrite: bool) -> BulkPart:
    what = f"file {index + 1}"
    read = _guarded(part, what)

    async def skip(limit: int) -> bool:
        dropped = 0
        while not part.at_eof():
            dropped += len(await read(SKIP_CHUNK))
            if dropped > limit:
                return False
        return True

    headers = part.headers
    declared = _int_or_none(headers.get("X-File-Size") or headers.get("Content-Length"))
    return BulkPart(target=part.filename, read=read, declared_size=declared,
                    base=headers.get("X-Base-Version") or None,
                    overwrite=_truthy(headers.get("X-Overwrite")) if "X-Overwrite" in headers else overwrite,
                    client_ms=_int_or_none(headers.get("X-Client-Time")), skip=skip)


async def _parts(request: web.Request, overwrite: bool) -> AsyncIterator[BulkPart]:
    if not request.content_type.startswith("multipart/"):
        raise BulkBodyMalformed(f"the body is {request.content_type or 'without a content type'}: {HOW}")
    index = 0
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                return
            if not isinstance(part, BodyPartReader):
                raise BulkBodyMalformed(f"part {index + 1} is itself multipart: {HOW}")
            if part.filename is None:
                raise BulkBodyMalformed(f"part {index + 1} is not a file (its Content-Disposition has no "
                                        f"filename): {HOW}")
            yield _part(part, index, overwrite)
            index += 1
    except MALFORMED as exc:
        raise BulkBodyMalformed(f"the multipart body is malformed after {index} file(s) ({exc}); {HOW}") from exc
    except CUT_OFF as exc:
        raise BulkBodyMalformed(f"the body was cut off after {index} file(s) ({exc.__class__.__name__})") from exc


def result_view(result: FileResult) -> dict[str, Any]:
    view: dict[str, Any] = {"index": result.index, "type": result.file_type, "name": result.name}
    if result.head is not None:
        assert result.file_type is not None and result.name is not None
        return {**view, "status": 201, **version_view(result.file_type, result.name, result.head.to_doc()),
                "category": result.category}
    assert result.error is not None
    error = api_error(result.error)
    return {**view, "status": error.status, "error": error.body()["error"]}


class BulkRoutes:
    def __init__(self, bulk: BulkUploads, accounts: Any) -> None:
        self.bulk, self.accounts = bulk, accounts

    def register(self, app: web.Application) -> None:
        app.router.add_post("/api/files/bulk", self.upload)

    async def upload(self, request: web.Request) -> web.Response:
        who = identity(request)
        outcome = await self.bulk.upload(who.user_id, who.device_id,
                                         _parts(request, _query_flag(request, "overwrite")),
                                         extra=lambda: device_num(request))
        results = [result_view(r) for r in outcome.results]
        stored = sum(1 for r in outcome.results if r.head is not None)
        answer = {"results": results, "stored": stored, "refused": len(results) - stored}
        if outcome.stopped is not None:
            error = api_error(outcome.stopped)
            raise ApiError(error.message, code=error.code, status=error.status, details={**error.details, **answer})
        account = outcome.account or await self.accounts.account(who.user_id)
        answer["usage"] = usage_view(account)
        return web.json_response(answer)
