"""An account's data as one zip, streamed (docs/operators.md "Export on request"): every live
file's newest version (or every stored version) under files/<type>/<name>, and manifest.json
listing each entry with its version, size, server time and checksum. Memory stays bounded:
blobs are read from S3 in chunks and each chunk is zipped and sent before the next is read
(the stdlib's zipfile writes to a stream that cannot seek, with data descriptors; ZIP64 for
large members); nothing is buffered to disk."""

import json
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from osmcloud_common.blobstore import BlobStore

from .store import FilesStore


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
    path = f"files/{version['type']}/{version['name']}"
    return f"versions/{version['type']}/{version['name']}/{version['updated_ms']}-{version['_id']}" \
        if all_versions else path


async def _versions(store: FilesStore, user_id: str, all_versions: bool) -> AsyncIterator[dict[str, Any]]:
    if all_versions:
        async for version in store.stream_versions(user_id, None):
            if not version.get("deleted"):
                yield version
        return
    async for head in store.stream_live_heads(user_id, None):
        ref_version = await store.versions.find_one({"_id": head["head"]["version_id"]})
        if ref_version is not None and not ref_version.get("deleted"):
            yield ref_version


async def stream_export(store: FilesStore, blobs: BlobStore, user_id: str, all_versions: bool,
                        send: Callable[[bytes], Awaitable[None]]) -> dict[str, int]:
    """Writes the zip through `send`; returns {"files": n, "bytes": content bytes}."""
    sink = _Sink()
    manifest: list[dict[str, Any]] = []
    total = 0
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        async for version in _versions(store, user_id, all_versions):
            name = member_name(version, all_versions)
            info = zipfile.ZipInfo(name, date_time=_zip_time(version.get("updated_ms")))
            with archive.open(info, "w", force_zip64=True) as member:
                if version.get("size") and version.get("blob_key"):
                    async for chunk in blobs.stream(version["blob_key"]):
                        member.write(chunk)
                        await send(sink.take())
            await send(sink.take())
            total += max(0, version.get("size") or 0)
            manifest.append({"path": name, "type": version["type"], "name": version["name"],
                             "version_id": version["_id"], "size": version.get("size"),
                             "checksum": version.get("checksum"), "updated_ms": version.get("updated_ms"),
                             "client_ms": version.get("client_ms")})
        archive.writestr("manifest.json", json.dumps({"user_id": user_id, "all_versions": all_versions,
                                                      "files": manifest}, indent=1))
    await send(sink.take())
    return {"files": len(manifest), "bytes": total}


def _zip_time(updated_ms: int | None) -> tuple[int, int, int, int, int, int]:
    at = datetime.fromtimestamp((updated_ms or 0) / 1000, UTC)
    return max(at, datetime(1980, 1, 1, tzinfo=UTC)).timetuple()[:6]
