"""Files as one zip, streamed: the operator's export of an account (docs/operators.md "Export
on request"), and a user's own backup and chosen files (backup.py, docs/backup-download.md).
Each member is a version's bytes under the path its selection gives it (files/<type>/<name>
for a newest version); manifest.json, the last member, lists each with its version, size,
server time and checksum. Memory stays bounded: blobs are read from S3 in chunks and each
chunk is zipped and sent before the next is read (the stdlib's zipfile writes to a stream
that cannot seek, with data descriptors; ZIP64 for large members); nothing is buffered to
disk. What grows with the number of files (never with their bytes) is the zip's central
directory and the manifest, each entry kept as its JSON line (a few hundred bytes a file)."""

import asyncio
import contextlib
import json
import zipfile
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from osmcloud_common.blobstore import BlobStore

from .ports import Blobs
from .store import FilesStore

# a zip member: its path in the zip and the version document whose bytes it holds
Member = tuple[str, dict[str, Any]]
VERSIONS_PER_READ = 200  # newest versions read by id in one command
SMALL_BLOB = 256 * 1024  # a blob up to this size is read whole, ahead of its turn
READ_AHEAD = 16  # members whose small blobs are being read while the current one is zipped


class _Sink:
    """What zipfile writes into: bytes collected until the caller sends them."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.offset = 0

    def write(self, data: bytes) -> int:
        self.parts.append(data if isinstance(data, bytes) else bytes(data))
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        pass

    def close(self) -> None:
        """zipfile never closes a stream it was given; here for the writable-stream protocol."""

    def take(self) -> bytes:
        data = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
        self.parts = []
        return data


def member_name(version: dict[str, Any], all_versions: bool) -> str:
    """files/<type>/<name> for a file's newest version; versions/<type>/<name>/<updatetime>-<id>
    for one version among several of the file (the operator's all-versions export, a user's
    named versions)."""
    path = f"files/{version['type']}/{version['name']}"
    return f"versions/{version['type']}/{version['name']}/{version['updated_ms']}-{version['_id']}" \
        if all_versions else path


async def newest_versions(store: FilesStore, user_id: str, types: list[str] | None) -> AsyncIterator[dict[str, Any]]:
    """The newest version of every live file of the account (of `types`; None: every type),
    most recently changed first: heads read in batches, their versions a batch at a time."""
    batch: list[str] = []
    async for head in store.stream_live_heads(user_id, types):
        batch.append(head["head"]["version_id"])
        if len(batch) == VERSIONS_PER_READ:
            async for version in _live_by_ids(store, user_id, batch):
                yield version
            batch = []
    async for version in _live_by_ids(store, user_id, batch):
        yield version


async def _live_by_ids(store: FilesStore, user_id: str, ids: list[str]) -> AsyncIterator[dict[str, Any]]:
    found = await store.versions_by_ids(user_id, ids) if ids else {}
    for version_id in ids:
        version = found.get(version_id)
        if version is not None and not version.get("deleted"):  # gone meanwhile: not in the zip
            yield version


async def _export_members(store: FilesStore, user_id: str, all_versions: bool) -> AsyncIterator[Member]:
    if all_versions:
        async for version in store.stream_versions(user_id, None):
            if not version.get("deleted"):
                yield member_name(version, True), version
        return
    async for version in newest_versions(store, user_id, None):
        yield member_name(version, False), version


async def stream_export(store: FilesStore, blobs: BlobStore, user_id: str, all_versions: bool,
                        send: Callable[[bytes], Awaitable[None]]) -> dict[str, int]:
    """The operator's export. Writes the zip through `send`; returns {"files": n, "bytes": content bytes}."""
    return await stream_zip(blobs, _export_members(store, user_id, all_versions),
                            {"user_id": user_id, "all_versions": all_versions}, send)


async def stream_zip(blobs: Blobs | BlobStore, members: AsyncIterable[Member], about: dict[str, Any],
                     send: Callable[[bytes], Awaitable[None]]) -> dict[str, int]:
    """Writes each member's bytes, then manifest.json ({**about, "files": [...]}) through `send`,
    chunk by chunk; returns {"files": n, "bytes": content bytes}."""
    sink = _Sink()
    lines: list[bytes] = []  # the manifest's entries, each as its JSON line
    total = 0
    # closed as soon as the zip ends or stops (the reads ahead cancelled), not when collected
    async with contextlib.aclosing(_read_ahead(blobs, members)) as ahead:
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            async for path, version, early in ahead:
                info = zipfile.ZipInfo(path, date_time=_zip_time(version.get("updated_ms")))
                with archive.open(info, "w", force_zip64=True) as member:
                    if early is not None:
                        member.write(await early)
                    elif version.get("size") and version.get("blob_key"):
                        async for chunk in blobs.stream(version["blob_key"]):
                            member.write(chunk)
                            await send(sink.take())
                await send(sink.take())
                total += max(0, version.get("size") or 0)
                lines.append(json.dumps({"path": path, "type": version["type"], "name": version["name"],
                                         "version_id": version["_id"], "size": version.get("size"),
                                         "checksum": version.get("checksum"),
                                         "updated_ms": version.get("updated_ms"),
                                         "client_ms": version.get("client_ms")}).encode())
            with archive.open("manifest.json", "w") as manifest:
                manifest.write(json.dumps({**about, "files": []})[:-2].encode() + b"\n")  # all but "]}"
                for i, line in enumerate(lines):
                    manifest.write(line + (b",\n" if i < len(lines) - 1 else b"\n"))
                    if len(sink.parts) >= 256:
                        await send(sink.take())
                manifest.write(b"]}\n")
    await send(sink.take())
    return {"files": len(lines), "bytes": total}


async def _read_ahead(blobs: Blobs | BlobStore, members: AsyncIterable[Member]
                      ) -> AsyncGenerator[tuple[str, dict[str, Any], "asyncio.Future[bytes] | None"], None]:
    """The members in order, each small blob's bytes already being read (a read of its own for
    each, up to READ_AHEAD members ahead: many small files cost one S3 round trip each, and
    these overlap); a large member's bytes (None here) are streamed when its turn comes.
    Holds at most READ_AHEAD x SMALL_BLOB bytes; reads not yet used are cancelled when the
    zip stops (the client went away)."""
    ahead: deque[tuple[str, dict[str, Any], asyncio.Future[bytes] | None]] = deque()
    try:
        async for path, version in members:
            small = 0 < (version.get("size") or 0) <= SMALL_BLOB and version.get("blob_key")
            ahead.append((path, version, asyncio.ensure_future(_whole(blobs, version["blob_key"])) if small else None))
            if len(ahead) > READ_AHEAD:
                yield ahead.popleft()
        while ahead:
            yield ahead.popleft()
    finally:
        unused = [early for _, _, early in ahead if early is not None]
        for early in unused:
            early.cancel()
        # ended before the zip returns (their S3 connections released); a failure is retrieved
        # here, so one no one awaited is not reported as unretrieved
        await asyncio.gather(*unused, return_exceptions=True)


async def _whole(blobs: Blobs | BlobStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in blobs.stream(key)])


def _zip_time(updated_ms: int | None) -> tuple[int, int, int, int, int, int]:
    at = datetime.fromtimestamp((updated_ms or 0) / 1000, UTC)
    return max(at, datetime(1980, 1, 1, tzinfo=UTC)).timetuple()[:6]
