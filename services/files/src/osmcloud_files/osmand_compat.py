"""OsmAnd's file endpoints (`/userdata/list-files`, `upload-file`, `download-file`,
`delete-file`, `delete-file-version`, `check-file-on-server`; ../shared/OSMAND-PROTOCOL.md),
answered by files on the same versions, blobs, ledger, plan rules and events as the native
API: an upload here is the native upload (file-uploaded, quota reserved while the body
streams), delete-file the native delete marker (file-deleted: the trash gets the item),
delete-file-version the native removal of one version.

The app sends `deviceid` + `accessToken` as parameters that nginx cannot authenticate (a form
body), so each call asks auth (osmcloud_common.osmand.CompatAuthenticator). upload-file takes
them from the query only: its multipart body streams, gunzipped on the way into S3, and is
never read whole. Content is stored uncompressed (what the native API serves too); the gzip
size is kept as the version's zip size, and downloads are gzipped again on the fly."""

import contextlib
import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from osmcloud_common import tracing
from osmcloud_common.errors import ApiError
from osmcloud_common.logging import get_logger
from osmcloud_common.mongo import find_by_ids
from osmcloud_common.osmand import (
    MALFORMED_REQUEST,
    CompatAuthenticator,
    CompatIdentity,
    ErrorCode,
    OsmandError,
    compat_params,
    device_credentials,
)

from .bodies import complete_or_refused
from .bootstrap import FilesServices
from .domain import FileRef, parse_file_ref
from .errors import FilesError, InvalidInput, Missing, OverLimit
from .gzip_stream import Gunzip, NotGzip, gzip_chunks
from .osmand_files import ListFilesAnswer, osmand_error, parse_types, upload_answer
from .settings import FilesSettings
from .uploads import UploadRequest

log = get_logger(__name__)

FILE_PART = "file"
DRAIN_LIMIT = 8 * 1024 * 1024  # a refused upload's rest is read (and dropped) up to this size
AUTHENTICATOR = web.AppKey("osmand_authenticator", CompatAuthenticator)


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise OsmandError(MALFORMED_REQUEST, f"the parameter '{name}' is missing")
    return value


def _optional_int(params: dict[str, str], name: str) -> int | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise OsmandError(MALFORMED_REQUEST,
                          f"the parameter '{name}' must be an integer (ms since 1970), got '{raw}'") from None


def _changed(ref: FileRef, what: str = "changed meanwhile; retry") -> str:
    """What OsmAnd is told of a file that changed while this call worked on it (the native
    API answers 409; the app knows no such code, so a compat error asking to retry)."""
    return f"{ref.file_type}/{ref.name} {what}"


def _quota_of(account: dict[str, Any]) -> int | None:
    return (account.get("entitlement") or {}).get("quota_bytes")


def _truthy(raw: str | None) -> bool:
    return (raw or "").strip().lower() in ("true", "1", "yes")


class OsmandFilesRoutes:
    def __init__(self, services: FilesServices, settings: FilesSettings) -> None:
        self.store, self.blobs, self.settings = services.store, services.blobs, settings
        self.ops, self.uploads = services.ops, services.groups

    def register(self, app: web.Application) -> None:
        app.cleanup_ctx.append(self._authenticator)
        app.router.add_get("/userdata/list-files", self.list_files)
        app.router.add_post("/userdata/upload-file", self.upload_file)
        app.router.add_get("/userdata/download-file", self.download_file)
        app.router.add_post("/userdata/delete-file", self.delete_file)
        app.router.add_post("/userdata/delete-file-version", self.delete_file_version)
        app.router.add_get("/userdata/check-file-on-server", self.check_file_on_server)

    async def _authenticator(self, app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(trace_configs=tracing.client_trace_configs()) as session:
            app[AUTHENTICATOR] = CompatAuthenticator(session, self.settings.auth_url, self.settings.gateway_secret)
            yield

    @staticmethod
    def _auth(request: web.Request) -> CompatAuthenticator:
        return request.app[AUTHENTICATOR]

    async def _authenticated(self, request: web.Request) -> tuple[CompatIdentity, dict[str, str]]:
        """The caller and the request's parameters (query and form: a body is read once)."""
        params = await compat_params(request)
        return await self._auth(request).verify(*device_credentials(params)), params

    async def _quota(self, user_id: str) -> int | None:
        return _quota_of(await self.store.account(user_id))

    async def _as_osmand(self, error: FilesError, user_id: str, changed: str) -> OsmandError:
        return osmand_error(error, await self._quota(user_id) if isinstance(error, OverLimit) else None, changed)

    @staticmethod
    def _ref(who: CompatIdentity, params: dict[str, str]) -> FileRef:
        try:
            return parse_file_ref(who.user_id, _required(params, "type"), _required(params, "name"))
        except InvalidInput as exc:
            raise OsmandError(MALFORMED_REQUEST, exc.message) from None

    async def _version_at(self, ref: FileRef, updatetime: int | None) -> dict[str, Any] | None:
        """The version with that server time, or the newest (a delete marker included)."""
        if updatetime is None:
            newest = await self.store.history(ref, 1)
            return newest[0] if newest else None
        return await self.store.version_at(ref, updatetime)

    # ------------------------------------------------------------ list-files
    async def list_files(self, request: web.Request) -> web.StreamResponse:
        """Streamed: versions and heads are read a page at a time and written as they come
        (allFiles, then uniqueFiles, then the totals), so no answer holds an account's
        versions in memory. The object's members are OsmAnd's; their order is free in JSON."""
        who, params = await self._authenticated(request)
        types = parse_types(params.get("type"))
        account = await self.store.account(who.user_id)
        in_flight = sorted(account.get("ops") or {})
        all_versions = _truthy(params.get("allVersions"))
        answer = ListFilesAnswer(who.user_num, all_versions, _quota_of(account) or 0)
        response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
        await response.prepare(request)
        out = _JsonList(response)
        if all_versions:
            await out.open("allFiles", first=True)
            async for version in self.store.stream_versions(who.user_id, types):
                # a version whose upload has not finished is not there yet (it may still be undone)
                if version.get("op") not in in_flight:
                    await out.add(answer.all_version(version))
            await out.close()
        await out.open("uniqueFiles", first=not all_versions)
        async for page in _pages(self.store.stream_live_heads(who.user_id, types)):
            versions = {v["_id"]: v for v in await find_by_ids(self.store.versions,
                                                               [h["head"]["version_id"] for h in page])}
            for head in page:
                head_version = versions.get(head["head"]["version_id"])
                if head_version is not None:
                    await out.add(answer.newest(head_version))
        await out.close()
        count = None if all_versions else await self.store.versions.count_documents(
            {"user_id": who.user_id, "deleted": False, "op": {"$nin": in_flight},
             **({"type": {"$in": types}} if types else {})})
        totals = json.dumps(answer.totals(count))[1:]  # the members after the lists, and the closing brace
        await response.write(b"," + totals.encode())
        await response.write_eof()
        return response

    # ------------------------------------------------------------ upload-file
    async def upload_file(self, request: web.Request) -> web.Response:
        try:
            return await self._upload_file(request)
        except (ApiError, FilesError):
            await _drain(request)
            raise

    async def _upload_file(self, request: web.Request) -> web.Response:
        who = await self._auth(request).authenticate_query(request)
        params = dict(request.query)
        ref = self._ref(who, params)
        client_ms = _optional_int(params, "clienttime")
        if not request.content_type.startswith("multipart/"):
            raise OsmandError(MALFORMED_REQUEST, "send the file as multipart/form-data with one part named 'file'")
        try:
            reader = await request.multipart()
            part = await reader.next()
            while part is not None and getattr(part, "name", None) != FILE_PART:
                await part.release()
                part = await reader.next()
        except (ValueError, AssertionError, aiohttp.ClientError, HttpProcessingError) as exc:
            # HttpProcessingError: a part's headers are not HTTP headers (aiohttp's parser refuses them)
            raise OsmandError(MALFORMED_REQUEST, f"the multipart body could not be read ({exc})") from exc
        if part is None or not isinstance(part, aiohttp.BodyPartReader):
            raise OsmandError(MALFORMED_REQUEST, "the multipart body has no part named 'file'")
        gunzip = Gunzip(complete_or_refused(part.read_chunk))
        try:
            head, _ = await self.uploads.upload(UploadRequest(
                ref, who.device_id, gunzip.read, None, overwrite=True, client_ms=client_ms,
                extra=lambda: {"device_num": who.device_num, "zip_size": gunzip.compressed}))
        except NotGzip as exc:
            raise OsmandError(ErrorCode.GZIP_ONLY, f"File is submitted not in gzip format: {exc}") from None
        except FilesError as exc:
            changed = _changed(ref, "changed during the upload; upload again")
            raise await self._as_osmand(exc, who.user_id, changed) from None
        log.info("version stored (osmand)", type=ref.file_type, name=ref.name, version_id=head.version_id,
                 size=head.size, zip_size=gunzip.compressed)
        return web.json_response(upload_answer(ref.file_type, ref.name, head.to_doc(), gunzip.compressed))

    # ------------------------------------------------------------ download-file
    async def download_file(self, request: web.Request) -> web.StreamResponse:
        who, params = await self._authenticated(request)
        ref = self._ref(who, params)
        updatetime = _optional_int(params, "updatetime")
        version = await self._version_at(ref, updatetime)
        if version is None or version.get("deleted") or not version.get("blob_key"):
            what = f"version {updatetime} of " if updatetime is not None else ""
            raise OsmandError(ErrorCode.FILE_NOT_AVAILABLE,
                              f"File is not available: {what}{ref.file_type}/{ref.name} "
                              f"{'is deleted' if version is not None else 'does not exist'}")
        # as the reference: gzip for a client that accepts it (the app does), plain otherwise
        gzip = "gzip" in request.headers.get("Accept-Encoding", "").lower()
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        if gzip:
            response.headers["Content-Encoding"] = "gzip"
        else:
            response.content_length = version["size"]
        await response.prepare(request)
        chunks = self.blobs.stream(version["blob_key"]) if version["size"] else _nothing()
        async for chunk in (gzip_chunks(chunks) if gzip else chunks):
            await response.write(chunk)
        await response.write_eof()
        return response

    # ------------------------------------------------------------ delete-file, delete-file-version
    async def delete_file(self, request: web.Request) -> web.Response:
        who, params = await self._authenticated(request)
        ref = self._ref(who, params)
        current = await self.store.head(ref)
        if current is not None and current["head"]["deleted"]:
            return web.json_response({"status": "ok"})  # deleted already: nothing more to do
        try:
            await self.ops.delete_file(ref, None, who.device_id, None, extra={"device_num": who.device_num})
        except Missing:
            raise OsmandError(ErrorCode.FILE_NOT_AVAILABLE,
                              f"File is not available: {ref.file_type}/{ref.name}") from None
        except FilesError as exc:
            raise await self._as_osmand(exc, who.user_id, _changed(ref)) from None
        return web.json_response({"status": "ok"})

    async def delete_file_version(self, request: web.Request) -> web.Response:
        who, params = await self._authenticated(request)
        ref = self._ref(who, params)
        updatetime = _optional_int(params, "updatetime")
        if updatetime is None:
            raise OsmandError(MALFORMED_REQUEST, "the parameter 'updatetime' is missing")
        version = await self._version_at(ref, updatetime)
        if version is None:
            raise OsmandError(ErrorCode.FILE_NOT_AVAILABLE,
                              f"File is not available: {ref.file_type}/{ref.name} has no version {updatetime}")
        try:
            await self.ops.remove_version(ref, version["_id"])
        except Missing:
            raise OsmandError(
                ErrorCode.FILE_NOT_AVAILABLE,
                f"File is not available: {ref.file_type}/{ref.name} has no version {updatetime}") from None
        except FilesError as exc:
            raise await self._as_osmand(exc, who.user_id, _changed(ref)) from None
        return web.json_response({"status": "ok"})

    # ------------------------------------------------------------ check-file-on-server
    async def check_file_on_server(self, request: web.Request) -> web.Response:
        """For stock maps the reference serves its own copy; we store no maps."""
        _required(dict(request.query), "name")
        _required(dict(request.query), "type")
        return web.json_response({"status": "not-present"})


LIST_PAGE = 500
WRITE_BYTES = 64 * 1024


async def _pages(cursor: AsyncIterable[dict[str, Any]], size: int = LIST_PAGE
                 ) -> AsyncIterator[list[dict[str, Any]]]:
    page: list[dict[str, Any]] = []
    async for doc in cursor:
        page.append(doc)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


class _JsonList:
    """Writes `"name":[entry,...]` members of one JSON object, buffered in pieces of about
    WRITE_BYTES."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response, self.size, self.empty = response, 0, True
        self.buffer: list[str] = []

    async def open(self, name: str, first: bool) -> None:
        self.buffer.append(("{" if first else ",") + json.dumps(name) + ":[")
        self.empty = True

    async def add(self, entry: dict[str, Any]) -> None:
        piece = ("" if self.empty else ",") + json.dumps(entry)
        self.buffer.append(piece)
        self.size += len(piece)
        self.empty = False
        if self.size >= WRITE_BYTES:
            await self._flush()

    async def close(self) -> None:
        self.buffer.append("]")
        await self._flush()

    async def _flush(self) -> None:
        if self.buffer:
            await self.response.write("".join(self.buffer).encode())
            self.buffer, self.size = [], 0


async def _drain(request: web.Request, limit: int = DRAIN_LIMIT) -> None:
    """Reads what is left of a refused upload's body (when it is small) before answering, so
    the app's connection stays usable: a reply sent before the body ends makes the gateway
    close the connection, and the client's next request on it would fail."""
    left = limit
    with contextlib.suppress(Exception):
        while left > 0 and not request.content.at_eof():
            chunk = await request.content.read(min(left, 256 * 1024))
            if not chunk:
                break
            left -= len(chunk)


async def _nothing() -> AsyncIterator[bytes]:
    """No chunks: the body of an empty file."""
    chunks: tuple[bytes, ...] = ()
    for chunk in chunks:
        yield chunk
