"""Restoring a trashed file: the trash service calls this synchronously (POST
/internal/restore, service to service, never through the gateway) because the user waits
for the outcome — restored, or refused for quota or plan, with the item kept in the trash.

The file's last live version is saved again as a NEW version (new id and server time; its
blob a server-side S3 copy, so no blob is shared by two versions), under the same quota
and plan rules as an upload, and the head moves from the delete marker to it."""

import uuid

from aiohttp import web
from minio.error import S3Error
from pydantic import BaseModel

from osmcloud_common.blobstore import BlobStore
from osmcloud_common.errors import PayloadTooLarge, Conflict, NotFound
from osmcloud_common.events import Entitlement, FileRestored, StorageUsageChanged
from osmcloud_common.http import identity, json_body
from osmcloud_common.logging import get_logger
from osmcloud_common.runtime import Runtime

from .domain import next_update_ms, parse_file_ref, quota_exceeded, restore_quota
from .settings import FilesSettings
from .storage_bound import StorageBound
from .storage_rule import version_cost
from .store import FilesStore, HeadMoved
from .views import version_view

log = get_logger(__name__)


class RestoreRequest(BaseModel):
    file_type: str
    name: str
    tombstone_version_id: str
    last_version_id: str


class RestoreRoute:
    def __init__(self, runtime: Runtime, store: FilesStore, blobs: BlobStore, settings: FilesSettings) -> None:
        self.rt, self.store, self.blobs, self.settings = runtime, store, blobs, settings
        self.bound = StorageBound(runtime, store, blobs)

    def register(self, app: web.Application) -> None:
        app.router.add_post("/internal/restore", self.restore)

    async def restore(self, request: web.Request) -> web.Response:
        who = identity(request)
        body: RestoreRequest = await json_body(request, RestoreRequest)
        ref = parse_file_ref(who.user_id, body.file_type, body.name)
        current = await self.store.head(ref)
        if current is None:
            raise NotFound(f"{ref.file_type}/{ref.name} is gone (purged)", code="file_not_found")
        head = current["head"]
        if head.get("restored_from") == body.tombstone_version_id:
            return web.json_response(version_view(ref.file_type, ref.name, head))  # a retried restore
        if head["version_id"] != body.tombstone_version_id:
            raise Conflict(f"{ref.file_type}/{ref.name} changed since it was deleted (uploaded or restored "
                           "again); download the trashed version instead if you want it back",
                           code="file_changed")
        source = await self.store.version(ref, body.last_version_id)
        if source is None or source.get("deleted") or not source.get("blob_key"):
            raise NotFound(f"the trashed version of {ref.file_type}/{ref.name} is gone (purged)",
                           code="version_not_found")

        account = await self.store.account(ref.user_id)
        entitlement = Entitlement.model_validate(account["entitlement"]) if account.get("entitlement") else None
        quota, quota_field = restore_quota(entitlement, ref.file_type)
        reserved = source["size"]  # the restored copy takes exactly the trashed version's bytes
        # during grace what Pro stored comes back whatever Start's per-file limit says
        per_file = entitlement.max_file_bytes if quota_field == "quota_bytes" else None
        limit = min(x for x in (per_file, self.settings.max_upload_bytes) if x is not None)
        if reserved > limit:
            raise PayloadTooLarge(f"the file has {reserved} bytes; the plan allows at most {limit} bytes per file",
                                  code="file_too_large")
        if not await self.store.reserve(ref.user_id, quota, reserved, quota_field):
            latest = await self.store.account(ref.user_id)
            raise quota_exceeded(reserved, latest["committed_bytes"], quota)

        version_id = uuid.uuid4().hex
        blob_key = f"users/{ref.user_id}/{version_id}"
        settled = False
        try:
            try:
                await self.blobs.copy(source["blob_key"], blob_key)
            except S3Error as exc:
                if exc.code not in ("NoSuchKey", "NoSuchObject", "NotFound"):
                    raise
                raise NotFound(f"the trashed version of {ref.file_type}/{ref.name} is gone (purged)",
                               code="version_not_found")
            now = self.rt.clock.now()
            new_head = {"version_id": version_id, "size": source["size"], "checksum": source.get("checksum"),
                        "updated_ms": next_update_ms(int(now.timestamp() * 1000), head["updated_ms"]),
                        "client_ms": source.get("client_ms"), "device_id": who.device_id or None,
                        "deleted": False, "restored_from": body.tombstone_version_id}
            await self.store.add_version({"_id": version_id, "user_id": ref.user_id, "type": ref.file_type,
                                          "name": ref.name, "blob_key": blob_key, **new_head, "created_at": now})
            event = self.rt.event(FileRestored(file_type=ref.file_type, name=ref.name, version_id=version_id,
                                               tombstone_version_id=body.tombstone_version_id), ref.user_id)
            try:
                await self.store.move_head(ref, body.tombstone_version_id, new_head, [event])
            except HeadMoved:
                await self.store.remove_version(version_id)
                raise Conflict(f"{ref.file_type}/{ref.name} changed while it was being restored",
                               code="file_changed")
            await self.store.settle_usage(ref.user_id, source["size"], 1, reserved, self._usage_event(ref.user_id),
                                          stored_delta=version_cost(source["size"]))
            settled = True
        finally:
            if not settled:
                await self.store.release(ref.user_id, reserved)
                await self.blobs.delete(blob_key)
        self.rt.events_written()
        await self.bound.enforce(ref, version_cost(source["size"]))  # the restored copy is new stored bytes
        log.info("file restored", type=ref.file_type, name=ref.name, version_id=version_id,
                 tombstone=body.tombstone_version_id)
        return web.json_response({**version_view(ref.file_type, ref.name, new_head), "category": ref.category})

    def _usage_event(self, user_id: str):
        def make(seq: int, used: int, files: int, quota: int | None) -> dict:
            return self.rt.event(StorageUsageChanged(sequence=seq, used_bytes=used, file_count=files,
                                                     quota_bytes=quota), user_id)
        return make
