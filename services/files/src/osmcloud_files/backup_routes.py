"""A user's own files as one streamed zip (docs/backup-download.md): `GET /api/files/backup`
(the newest version of every live file, or of chosen types) and `POST /api/files/download`
(a chosen set). Everything that can be refused is refused before the answer starts - first
a zip over the process's or the account's limit of zips at once (zip_slots.py) - then the
zip streams with flat memory (export.py), its slot held until it ends however it ends - also
when its client stops reading: a write that waits longer than the stall time cuts the zip off."""

import asyncio
import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from osmcloud_common.errors import BadRequest
from osmcloud_common.http import identity, validated
from osmcloud_common.logging import get_logger

from .backup import MAX_CHOSEN, backup_members, backup_types, chosen_members, wanted_files
from .errors import RequestTooLarge, TooManyChosen
from .export import Member, stream_zip
from .ports import Blobs, Clock
from .store import FilesStore
from .zip_slots import ZipSlots

log = get_logger(__name__)

# a download's JSON body: MAX_CHOSEN entries of the longest names fit
MAX_BODY_BYTES = 2 * 1024 * 1024
READ_PIECE = 64 * 1024


class ChosenFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: StrictStr
    name: StrictStr
    version_id: Annotated[StrictStr, Field(min_length=1, max_length=128)] | None = None


class ChosenFiles(BaseModel):
    model_config = ConfigDict(extra="forbid")
    files: list[ChosenFile]


class BackupRoutes:
    def __init__(self, store: FilesStore, blobs: Blobs, clock: Clock, slots: ZipSlots,
                 stall_seconds: float = 120.0) -> None:
        self.store, self.blobs, self.clock, self.slots = store, blobs, clock, slots
        self.stall_seconds = stall_seconds

    def register(self, app: web.Application) -> None:
        app.router.add_get("/api/files/backup", self.backup)
        app.router.add_post("/api/files/download", self.download)

    async def backup(self, request: web.Request) -> web.StreamResponse:
        who = identity(request)
        with self.slots.taken(who.user_id):
            types = backup_types(who.user_id, request.query.get("types"))
            return await self._zip(request, "osmcloud-backup", backup_members(self.store, who.user_id, types),
                                   {"user_id": who.user_id, "selection": "backup", "types": types})

    async def download(self, request: web.Request) -> web.StreamResponse:
        who = identity(request)
        with self.slots.taken(who.user_id):  # before the body is read: a refused request costs nothing
            chosen = await _chosen_files(request)
            wanted = wanted_files(who.user_id, [(f.type, f.name, f.version_id) for f in chosen.files])
            members = await chosen_members(self.store, who.user_id, wanted)

            async def listed() -> AsyncIterator[Member]:
                for member in members:
                    yield member
            return await self._zip(request, "osmcloud-files", listed(),
                                   {"user_id": who.user_id, "selection": "chosen"})

    async def _zip(self, request: web.Request, stem: str, members: AsyncIterable[Member], about: dict[str, Any]
                   ) -> web.StreamResponse:
        filename = f"{stem}-{self.clock.now():%Y-%m-%d}.zip"
        response = web.StreamResponse(headers={"Content-Type": "application/zip",
                                               "Content-Disposition": f'attachment; filename="{filename}"',
                                               "Cache-Control": "no-store"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        if request.method != "HEAD":
            async def send(data: bytes) -> None:
                if data:
                    await _write_unless_stalled(request, response, data, self.stall_seconds)
            summary = await stream_zip(self.blobs, members, about, send)
            log.info("zip sent", selection=about["selection"], files=summary["files"], bytes=summary["bytes"])
        await response.write_eof()
        return response


async def _write_unless_stalled(request: web.Request, response: web.StreamResponse, data: bytes,
                                seconds: float) -> None:
    """Writes, or cuts the connection when the client has taken nothing for `seconds` (the
    write waits while the gateway's buffers and the sockets are full): a client that stops
    reading would hold its zip slot, an S3 stream and a cursor until the gateway's own
    timeout (an hour). Counted as a client gone (499)."""
    try:
        async with asyncio.timeout(seconds):
            await response.write(data)
    except TimeoutError:
        log.info("zip client stalled; cut off", path=request.path, seconds=seconds)
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError(f"the client took nothing for {seconds:g} s") from None


async def _chosen_files(request: web.Request) -> ChosenFiles:
    """The body, read up to MAX_BODY_BYTES (413 beyond), as the list of chosen files (too
    many: 413 before the entries are checked one by one; a wrong shape: 400)."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise RequestTooLarge(MAX_BODY_BYTES)
    pieces, size = [], 0
    while piece := await request.content.read(READ_PIECE):
        size += len(piece)
        if size > MAX_BODY_BYTES:
            raise RequestTooLarge(MAX_BODY_BYTES)
        pieces.append(piece)
    try:
        raw = json.loads(b"".join(pieces))
    except ValueError:
        raise BadRequest('the request body must be JSON: {"files": [{"type": ..., "name": ...}]}') from None
    if isinstance(raw, dict) and isinstance(raw.get("files"), list) and len(raw["files"]) > MAX_CHOSEN:
        raise TooManyChosen(len(raw["files"]), MAX_CHOSEN)
    return validated(raw, ChosenFiles)
