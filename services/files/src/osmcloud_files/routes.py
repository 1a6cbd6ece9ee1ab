"""The files HTTP API: streamed uploads and downloads, versions with conflict detection,
listing, history and usage."""

import time
import uuid

from aiohttp import web
from aiohttp.client_exceptions import ClientPayloadError

from osmcloud_common.blobstore import BlobStore, BodyTooLarge
from osmcloud_common.errors import ApiError, BadRequest, Conflict, NotFound, PayloadTooLarge
from osmcloud_common.events import Entitlement, FileDeleted, FileUploaded, StorageUsageChanged
from osmcloud_common.http import identity
from osmcloud_common.logging import get_logger
from osmcloud_common.runtime import Runtime

from .domain import (FileRef, check_may_upload, next_update_ms, parse_file_ref, quota_exceeded,
                     reservation_for)
from .settings import FilesSettings
from .store import FilesStore, HeadMoved
from .views import head_view, stored_version_view, version_view

log = get_logger(__name__)

TYPE = "{file_type:[A-Za-z_]+}"
NAME = "{name:.+}"


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"query parameter '{name}' must be an integer, got '{raw}'")


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
        raise BadRequest(f"unsupported Range header '{header}'; use a single 'bytes=start-end'")
    end = min(end, size - 1)
    if start > end or start >= size:
        raise ApiError(f"range {header} is outside the file's {size} bytes", code="range_not_satisfiable",
                       status=416)
    return start, end


class FilesRoutes:
    def __init__(self, runtime: Runtime, store: FilesStore, blobs: BlobStore, settings: FilesSettings) -> None:
        self.rt, self.store, self.blobs, self.settings = runtime, store, blobs, settings

    def register(self, app: web.Application) -> None:
        app.router.add_get("/api/files", self.list_files)
        app.router.add_get("/api/files/usage", self.usage)
        app.router.add_get(f"/api/files/history/{TYPE}/{NAME}", self.history)
        app.router.add_put(f"/api/files/{TYPE}/{NAME}", self.upload)
        app.router.add_get(f"/api/files/{TYPE}/{NAME}", self.download)
        app.router.add_delete(f"/api/files/{TYPE}/{NAME}", self.delete)

    def _ref(self, request: web.Request) -> FileRef:
        who = identity(request)
        return parse_file_ref(who.user_id, request.match_info["file_type"], request.match_info["name"])

    def _usage_event(self, user_id: str):
        def make(seq: int, used: int, files: int, quota: int | None) -> dict:
            return self.rt.event(StorageUsageChanged(sequence=seq, used_bytes=used, file_count=files,
                                                     quota_bytes=quota), user_id)
        return make

    # ------------------------------------------------------------ upload
    async def upload(self, request: web.Request) -> web.Response:
        who = identity(request)
        ref = self._ref(request)
        base = request.query.get("base_version") or request.headers.get("If-Match", "").strip('"') or None
        overwrite = request.query.get("overwrite", "").lower() in ("1", "true", "yes")
        client_ms = _int_param(request, "clienttime")

        account = await self.store.account(ref.user_id)
        entitlement = Entitlement.model_validate(account["entitlement"]) if account.get("entitlement") else None
        check_may_upload(entitlement, ref.file_type)
        current = await self.store.head(ref)
        expected = self._expected_head(ref, current, base, overwrite)

        reserved = reservation_for(request.content_length, entitlement, self.settings.max_upload_bytes)
        if not await self.store.reserve(ref.user_id, entitlement.quota_bytes, reserved):
            latest = await self.store.account(ref.user_id)
            raise quota_exceeded(reserved, latest["committed_bytes"], entitlement.quota_bytes)

        version_id = uuid.uuid4().hex
        blob_key = f"users/{ref.user_id}/{version_id}"
        settled = False
        try:
            try:
                blob = await self.blobs.put_stream(blob_key, request.content.read, limit=reserved)
            except BodyTooLarge:
                raise PayloadTooLarge(f"the body is larger than the {reserved} bytes this upload may take",
                                      code="file_too_large")
            except (ClientPayloadError, ConnectionResetError) as exc:
                raise BadRequest(f"the upload was cut off before it ended ({exc.__class__.__name__})",
                                 code="upload_incomplete")
            if request.content_length is not None and blob.size != request.content_length:
                raise BadRequest("the body is shorter than its Content-Length", code="upload_incomplete")
            previous_ms = current["head"]["updated_ms"] if current else None
            head = {"version_id": version_id, "size": blob.size, "checksum": f"sha256:{blob.sha256}",
                    "updated_ms": next_update_ms(int(self.rt.clock.now().timestamp() * 1000), previous_ms),
                    "client_ms": client_ms, "device_id": who.device_id, "deleted": False}
            await self.store.add_version({"_id": version_id, "user_id": ref.user_id, "type": ref.file_type,
                                          "name": ref.name, "blob_key": blob_key, **head,
                                          "created_at": self.rt.clock.now()})
            event = self.rt.event(FileUploaded(file_type=ref.file_type, name=ref.name, version_id=version_id,
                                               size=blob.size, checksum=head["checksum"], device_id=who.device_id,
                                               updated_at=self.rt.clock.now()), ref.user_id)
            try:
                await self.store.move_head(ref, expected, head, [event])
            except HeadMoved:
                await self.store.remove_version(version_id)
                raise self._conflict(await self.store.head(ref))
            was_live = current is not None and not current["head"]["deleted"]
            old_size = current["head"]["size"] if was_live else 0
            usage = await self.store.settle_usage(ref.user_id, blob.size - old_size, 0 if was_live else 1,
                                                  reserved, self._usage_event(ref.user_id))
            settled = True
        finally:
            if not settled:
                await self.store.release(ref.user_id, reserved)
                await self.blobs.delete(blob_key)
        self.rt.events_written()
        log.info("version stored", type=ref.file_type, name=ref.name, version_id=version_id, size=blob.size)
        return web.json_response({**version_view(ref.file_type, ref.name, head), "category": ref.category,
                                  "usage": usage}, status=201)

    def _expected_head(self, ref: FileRef, current: dict | None, base: str | None, overwrite: bool) -> str | None:
        """Which head the new version must replace (the conflict rule): the named base, or,
        without one, nothing / a deleted file, or anything when overwriting explicitly."""
        if base is not None:
            if current is None or current["head"]["version_id"] != base:
                raise self._conflict(current)
            return base
        if current is None:
            return None
        if current["head"]["deleted"] or overwrite:
            return current["head"]["version_id"]
        raise self._conflict(current, "the file exists: name its head version as base_version, "
                                      "or pass overwrite=true")

    def _conflict(self, current: dict | None, message: str | None = None) -> Conflict:
        return Conflict(message or "the file changed since the version this upload is based on",
                        code="version_conflict", details={"head": head_view(current) if current else None})

    # ------------------------------------------------------------ download, list, history, usage
    async def download(self, request: web.Request) -> web.StreamResponse:
        ref = self._ref(request)
        wanted = request.query.get("version")
        if wanted:
            version = await self.store.version(ref, wanted)
        else:
            head = await self.store.head(ref)
            version = (await self.store.version(ref, head["head"]["version_id"])
                       if head and not head["head"]["deleted"] else None)
        if version is None or version.get("deleted"):
            raise NotFound(f"no such file or version: {ref.file_type}/{ref.name}", code="file_not_found")
        size = version["size"]
        span = _byte_range(request.headers.get("Range", ""), size)
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

    async def list_files(self, request: web.Request) -> web.Response:
        who = identity(request)
        types = [t for t in request.query.get("types", "").split(",") if t] or None
        for t in types or ():
            parse_file_ref(who.user_id, t, "x")  # 400 for an unknown type
        heads = await self.store.live_heads(who.user_id, types)
        return web.json_response({"files": [head_view(h) for h in heads]})

    async def history(self, request: web.Request) -> web.Response:
        ref = self._ref(request)
        versions = await self.store.history(ref)
        if not versions:
            raise NotFound(f"no such file: {ref.file_type}/{ref.name}", code="file_not_found")
        return web.json_response({"type": ref.file_type, "name": ref.name,
                                  "versions": [stored_version_view(v) for v in versions]})

    async def usage(self, request: web.Request) -> web.Response:
        who = identity(request)
        account = await self.store.account(who.user_id)
        entitlement = account.get("entitlement")
        return web.json_response({"used_bytes": account["used_bytes"], "file_count": account["file_count"],
                                  "quota_bytes": entitlement["quota_bytes"] if entitlement else 0,
                                  "plan": entitlement["plan"] if entitlement else None})

    # ------------------------------------------------------------ delete
    async def delete(self, request: web.Request) -> web.Response:
        who = identity(request)
        ref = self._ref(request)
        base = request.query.get("base_version") or request.headers.get("If-Match", "").strip('"') or None
        current = await self.store.head(ref)
        if current is None or current["head"]["deleted"]:
            raise NotFound(f"no such file: {ref.file_type}/{ref.name}", code="file_not_found")
        if base is not None and current["head"]["version_id"] != base:
            raise self._conflict(current)
        now = self.rt.clock.now()
        tombstone_id = uuid.uuid4().hex
        head = {"version_id": tombstone_id, "size": -1, "checksum": None, "deleted": True,
                "updated_ms": next_update_ms(int(now.timestamp() * 1000), current["head"]["updated_ms"]),
                "client_ms": _int_param(request, "clienttime"), "device_id": who.device_id}
        await self.store.add_version({"_id": tombstone_id, "user_id": ref.user_id, "type": ref.file_type,
                                      "name": ref.name, "blob_key": None, **head, "created_at": now})
        last = current["head"]
        event = self.rt.event(FileDeleted(file_type=ref.file_type, name=ref.name, category=ref.category,
                                          tombstone_version_id=tombstone_id, last_version_id=last["version_id"],
                                          size=last["size"], deleted_at=now), ref.user_id)
        try:
            await self.store.move_head(ref, last["version_id"], head, [event])
        except HeadMoved:
            await self.store.remove_version(tombstone_id)
            raise self._conflict(await self.store.head(ref))
        await self.store.settle_usage(ref.user_id, -last["size"], -1, 0, self._usage_event(ref.user_id))
        self.rt.events_written()
        return web.json_response({"status": "deleted", **version_view(ref.file_type, ref.name, head)})
