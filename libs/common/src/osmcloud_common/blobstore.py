"""Blobs in any S3 API through the `minio` SDK. The SDK blocks, so every call runs in a
worker thread; uploads stream from an async source without holding the body whole."""

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from minio import Minio
from minio.commonconfig import CopySource
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

PART_SIZE = 8 * 1024 * 1024


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"body exceeds {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class StoredBlob:
    key: str
    size: int
    sha256: str


class _AsyncSourceReader(io.RawIOBase):
    """A blocking file-like view of an async chunk source, read from a worker thread.

    Counts and hashes bytes on the way and stops the upload once `limit` is passed."""

    def __init__(self, read_chunk: Callable[[int], Awaitable[bytes]], loop: asyncio.AbstractEventLoop,
                 limit: int | None) -> None:
        self._read_chunk = read_chunk
        self._loop = loop
        self._limit = limit
        self._buffer = bytearray()
        self._eof = False
        self.size = 0
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._buffer) < n):
            chunk = asyncio.run_coroutine_threadsafe(self._read_chunk(1024 * 1024), self._loop).result()
            if not chunk:
                self._eof = True
                break
            self.size += len(chunk)
            if self._limit is not None and self.size > self._limit:
                raise BodyTooLarge(self._limit)
            self.sha256.update(chunk)
            self._buffer.extend(chunk)
        if n < 0:
            n = len(self._buffer)
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out


class BlobStore:
    def __init__(self, endpoint: str, access_key: str, secret_key: str, bucket: str, secure: bool = False,
                 threads: int = 16) -> None:
        self._client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure)
        self.bucket = bucket
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="s3")

    async def _run(self, fn, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    async def ensure_bucket(self) -> None:
        if not await self._run(self._client.bucket_exists, self.bucket):
            try:
                await self._run(self._client.make_bucket, self.bucket)
            except S3Error as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    async def reachable(self) -> bool:
        try:
            return await asyncio.wait_for(self._run(self._client.bucket_exists, self.bucket), timeout=3)
        except Exception:
            return False

    async def put_stream(self, key: str, read_chunk: Callable[[int], Awaitable[bytes]],
                         limit: int | None = None, content_type: str = "application/octet-stream") -> StoredBlob:
        """Streams an async source into S3 (multipart when large). On any failure nothing
        stays behind: an unfinished multipart upload is aborted by the SDK, and a finished
        object is removed if the limit check fails afterwards."""
        reader = _AsyncSourceReader(read_chunk, asyncio.get_running_loop(), limit)
        await self._run(self._client.put_object, self.bucket, key, reader, length=-1,
                        part_size=PART_SIZE, content_type=content_type)
        return StoredBlob(key=key, size=reader.size, sha256=reader.sha256.hexdigest())

    async def put_bytes(self, key: str, data: bytes) -> StoredBlob:
        await self._run(self._client.put_object, self.bucket, key, io.BytesIO(data), length=len(data))
        return StoredBlob(key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest())

    async def stream(self, key: str, offset: int = 0, length: int = 0, chunk_size: int = 256 * 1024
                     ) -> AsyncIterator[bytes]:
        response = await self._run(self._client.get_object, self.bucket, key, offset=offset, length=length)
        try:
            while True:
                chunk = await self._run(response.read, chunk_size)
                if not chunk:
                    break
                yield chunk
        finally:
            response.close()
            response.release_conn()

    async def get_bytes(self, key: str) -> bytes:
        return b"".join([chunk async for chunk in self.stream(key)])

    async def exists(self, key: str) -> bool:
        try:
            await self._run(self._client.stat_object, self.bucket, key)
            return True
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return False
            raise

    async def delete(self, key: str) -> None:
        """Idempotent: deleting a missing blob is fine."""
        try:
            await self._run(self._client.remove_object, self.bucket, key)
        except S3Error as exc:
            if exc.code not in ("NoSuchKey", "NoSuchObject", "NotFound"):
                raise

    async def copy(self, source_key: str, target_key: str) -> None:
        """Server-side copy inside the bucket: the bytes never pass through the service, and
        the two objects share nothing afterwards."""
        await self._run(self._client.copy_object, self.bucket, target_key, CopySource(self.bucket, source_key))

    async def delete_many(self, keys: list[str], batch: int = 1000) -> int:
        """Batched deletes (S3 DeleteObjects, up to 1000 keys a request); idempotent.
        Returns how many keys were asked for; raises if the server reports a failure."""
        def _remove(chunk: list[str]) -> list[str]:
            errors = self._client.remove_objects(self.bucket, (DeleteObject(k) for k in chunk))
            return [f"{e.name}: {e.code}" for e in errors if e.code not in ("NoSuchKey", "NoSuchObject", "NotFound")]
        failed: list[str] = []
        for start in range(0, len(keys), batch):
            failed += await self._run(_remove, keys[start:start + batch])
        if failed:
            raise RuntimeError(f"S3 refused to delete {len(failed)} object(s): {failed[:5]}")
        return len(keys)

    async def delete_prefix(self, prefix: str) -> int:
        def _remove_all() -> int:
            count = 0
            for obj in self._client.list_objects(self.bucket, prefix=prefix, recursive=True):
                self._client.remove_object(self.bucket, obj.object_name)
                count += 1
            return count
        return await self._run(_remove_all)

    async def list_keys(self, prefix: str = "") -> list[str]:
        def _list() -> list[str]:
            return [o.object_name for o in self._client.list_objects(self.bucket, prefix=prefix, recursive=True)]
        return await self._run(_list)
