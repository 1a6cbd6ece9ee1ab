"""The files HTTP API of single files: streamed uploads and downloads, versions with
conflict detection, deleting a file or one version, listing, history and usage. Account-wide
calls (storage page, backup switches, prune, delete all, delete a type, changes feed) are in
account_routes.py."""

import re
from typing import Any
from urllib.parse import quote

from aiohttp import web

from osmcloud_common.errors import ApiError, BadRequest
from osmcloud_common.events import Entitlement
from osmcloud_common.http import identity
from osmcloud_common.logging import get_logger

from .bodies import complete_or_refused
from .bootstrap import FilesServices
from .domain import FileRef, blob_key, parse_file_ref
from .errors import FileNotFound
from .listing import listing_json
from .ports import Blobs
from .settings import FilesSettings
from .uploads import UploadRequest
from .views import head_view, stored_version_view, usage_view, version_view

log = get_logger(__name__)

TYPE = "{file_type:[A-Za-z_]+}"
HISTORY_PAGE, MAX_HISTORY_PAGE = 100, 1000  # versions per history page: default, most
# the type of /api/files/{type}/{name}: never `history` or `types` followed by more path, so
# an undeclared method on /api/files/history/... or /api/files/types/... answers 405, not
# "unknown type 'history'"
FILE_TYPE = "{file_type:(?!(?:history|types)/)[A-Za-z_]+}"
NAME = "{name:.+}"


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"query parameter '{name}' must be an integer, got '{raw}'") from None


def device_num(request: web.Request) -> dict[str, int]:
    """The integer id of the calling device (the gateway passes auth's X-Device-Num), kept on
    the versions it writes so OsmAnd's list-files can name the device: {} when unknown."""
    raw = request.headers.get("X-Device-Num", "")
    return {"device_num": int(raw)} if raw.isdigit() else {}


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """Parses a single `bytes=a-b` range; None when absent. Raises 416 when unsatisfiable."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    start_s, _, end_s = spec.partition("-")
    try:
        if unit.strip() != "bytes" or "," in spec:
            raise ValueError
        if start_s == "":
            start, end = max(0, size - int(end_s)), size - 1
        else:
            start, end = int(start_s), (int(end_s) if end_s else size - 1)
    except ValueError:
        raise BadRequest(f"unsupported Range header '{header}'; use a single 'bytes=start-end'") from None
    end = min(end, size - 1)
    if start > end or start >= size:
        raise ApiError(f"range {header} is outside the file's {size} bytes", code="range_not_satisfiable",
                       status=416)
    return start, end


def newest_version(ref: FileRef, head: dict[str, Any]) -> dict[str, Any]:
    """What a download reads of a version document, from the head that points at it: the
    version's blob is at blob_key(user, version id) (domain.blob_key: every version's is)."""
    return {"_id": head["version_id"], "size": head["size"], "checksum": head.get("checksum"),
            "deleted": head.get("deleted"), "blob_key": blob_key(ref.user_id, head["version_id"])}


PLAIN_ID = re.compile(r"^[0-9A-Za-z_-]+$")


async def blob_redirect(blobs: Blobs, version: dict[str, Any], span: tuple[int, int] | None) -> str | None:
    """The internal URI for the gateway's /_blob/ location: what it must add to S3's answer
    (our ETag, version id and checksum), the byte range to ask for ("all" or bytes=a-b; the
    Range header was judged here, so the answer is the same as when files streams), then
    the presigned path and query. None when nginx could not pass it on unchanged (a version
    id or a key with other characters: nginx matches locations on the decoded path, and a
    re-encoded key would no longer match its signature); files streams those itself."""
    if not PLAIN_ID.match(version["_id"]):
        return None
    presigned = await blobs.presigned_get(version["blob_key"])
    if "%" in presigned.partition("?")[0]:
        return None
    checksum = version.get("checksum") or "none"
    wanted = f"bytes={span[0]}-{span[1]}" if span else "all"
    return f"/_blob/{version['_id']}/{quote(checksum, safe=':')}/{wanted}{presigned}"


class FilesRoutes:
    def __init__(self, services: FilesServices, settings: FilesSettings) -> None:
        self.store, self.blobs, self.settings = services.store, services.blobs, settings
        self.ops, self.uploads, self.listings = services.ops, services.groups, services.listings

    def register(self, app: web.Application) -> None:
        app.router.add_get("/api/files", self.list_files)
        app.router.add_get("/api/files/usage", self.usage)
        app.router.add_get(f"/api/files/history/{TYPE}/{NAME}", self.history)
        app.router.add_put(f"/api/files/{FILE_TYPE}/{NAME}", self.upload)
        app.router.add_get(f"/api/files/{FILE_TYPE}/{NAME}", self.download)
        app.router.add_delete(f"/api/files/{FILE_TYPE}/{NAME}", self.delete)

    def _ref(self, request: web.Request) -> FileRef:
        who = identity(request)
        return parse_file_ref(who.user_id, request.match_info["file_type"], request.match_info["name"])

    # ------------------------------------------------------------ upload
    async def upload(self, request: web.Request) -> web.Response:
        who = identity(request)
        ref = self._ref(request)
        base = request.query.get("base_version") or request.headers.get("If-Match", "").strip('"') or None
        overwrite = request.query.get("overwrite", "").lower() in ("1", "true", "yes")
        client_ms = _int_param(request, "clienttime")
        head, account = await self.uploads.upload(UploadRequest(
            ref, who.device_id, complete_or_refused(request.content.read), request.content_length, base, overwrite,
            client_ms, extra=lambda: device_num(request)))
        log.info("version stored", type=ref.file_type, name=ref.name, version_id=head.version_id, size=head.size)
        return web.json_response({**version_view(ref.file_type, ref.name, head.to_doc()), "category": ref.category,
                                  "usage": usage_view(account)}, status=201)

    # ------------------------------------------------------------ download, list, history, usage
    async def download(self, request: web.Request) -> web.StreamResponse:
        ref = self._ref(request)
        wanted = request.query.get("version")
        if wanted:
            version = await self.store.version(ref, wanted)
        else:  # the newest version: its head says all a download needs, one read fewer
            head = await self.store.head(ref)
            version = newest_version(ref, head["head"]) if head else None
        if version is None or version.get("deleted"):
            raise FileNotFound(f"no such file or version: {ref.file_type}/{ref.name}")
        size = version["size"]
        span = _byte_range(request.headers.get("Range", ""), size)
        if size and request.method == "GET" and self._gateway_streams_blobs(request):
            target = await blob_redirect(self.blobs, version, span)
            if target is not None:
                return web.Response(headers={"X-Accel-Redirect": target})
        start, end = span if span else (0, size - 1)
        response = web.StreamResponse(status=206 if span else 200, headers={
            "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes",
            "ETag": f'"{version["_id"]}"', "X-Version-Id": version["_id"],
            "X-Checksum": version.get("checksum") or ""})
        response.content_length = end - start + 1 if size else 0
        if span:
            response.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        await response.prepare(request)
        if size:
            async for chunk in self.blobs.stream(version["blob_key"], offset=start, length=end - start + 1):
                await response.write(chunk)
        await response.write_eof()
        return response

    def _gateway_streams_blobs(self, request: web.Request) -> bool:
        """The gateway can fetch a presigned blob itself (its /_blob/ location speaks plain
        HTTP to the S3 endpoint files uses)."""
        return self.settings.blob_redirect and not self.blobs.secure and \
            request.headers.get("X-Blob-Redirect") == "on"

    async def list_files(self, request: web.Request) -> web.Response:
        who = identity(request)
        types = [t for t in request.query.get("types", "").split(",") if t] or None
        for t in types or ():
            parse_file_ref(who.user_id, t, "x")  # 400 for an unknown type
        entries = await self.listings.live_files(who.user_id, types)
        return web.Response(body=listing_json(entries), content_type="application/json", charset="utf-8")

    async def history(self, request: web.Request) -> web.Response:
        """A page of the file's versions, newest first: `limit` (1-1000, default 100) versions
        older than `before` (an `updatetime`); `next_before` continues, null on the last page."""
        ref = self._ref(request)
        limit = _int_param(request, "limit") or HISTORY_PAGE
        if not 1 <= limit <= MAX_HISTORY_PAGE:
            raise BadRequest(f"limit must be between 1 and {MAX_HISTORY_PAGE}, got {limit}")
        before = _int_param(request, "before")
        versions = await self.store.history(ref, limit + 1, before)
        if not versions and before is None:
            raise FileNotFound(f"no such file: {ref.file_type}/{ref.name}")
        page = versions[:limit]
        return web.json_response({"type": ref.file_type, "name": ref.name,
                                  "versions": [stored_version_view(v) for v in page],
                                  "next_before": page[-1]["updated_ms"] if len(versions) > limit else None})

    async def usage(self, request: web.Request) -> web.Response:
        who = identity(request)
        account = await self.store.account(who.user_id)
        entitlement = account.get("entitlement")
        limit = Entitlement.model_validate(entitlement).storage_limit if entitlement else 0
        return web.json_response({"used_bytes": account["used_bytes"], "file_count": account["file_count"],
                                  # every version kept (live, old, trash) against the storage bound
                                  "stored_bytes": account.get("stored_bytes", 0), "storage_limit_bytes": limit,
                                  "quota_bytes": entitlement["quota_bytes"] if entitlement else 0,
                                  "max_files": entitlement.get("max_files") if entitlement else None,
                                  "max_file_bytes": entitlement.get("max_file_bytes") if entitlement else None,
                                  "reserved_bytes": account["reserved_bytes"],
                                  "plan": entitlement["plan"] if entitlement else None})

    # ------------------------------------------------------------ delete
    async def delete(self, request: web.Request) -> web.Response:
        """Without `version`: a delete marker (the file goes to the trash). With
        `version=<id>`: that one version is deleted permanently."""
        who = identity(request)
        ref = self._ref(request)
        version_id = request.query.get("version")
        if version_id:
            after = await self.ops.remove_version(ref, version_id)
            return web.json_response({"status": "version_deleted", "type": ref.file_type, "name": ref.name,
                                      "removed_version_id": version_id,
                                      "head": head_view(after.to_doc()) if after else None})
        base = request.query.get("base_version") or request.headers.get("If-Match", "").strip('"') or None
        head = await self.ops.delete_file(ref, base, who.device_id, _int_param(request, "clienttime"),
                                          extra=device_num(request))
        return web.json_response({"status": "deleted", **version_view(ref.file_type, ref.name, head.to_doc())})
