"""Blobs in any S3 API through the `minio` SDK. The SDK blocks, so every call runs in a
worker thread; uploads stream from an async source without holding the body whole.

An upload is read in parts of PART_SIZE on the event loop; while up to PARTS_IN_FLIGHT parts
travel to S3 in worker threads the next is read from the source, so at most that many parts
plus one are in memory. Bodies
that fit in one part are a single PUT, larger ones a multipart upload (aborted on failure).

The body is hashed once, by us (the SHA-256 the version keeps): requests carry it to S3 as
UNSIGNED-PAYLOAD, so the SDK does not hash every part a second time for the signature (nor the
server a third time to check it); see _UnsignedBodies."""

import asyncio
import contextlib
import hashlib
import io
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ParamSpec, TypeVar, cast
from urllib.parse import urlsplit

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import CopySource
from minio.credentials.credentials import Credentials
from minio.datatypes import Part
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from minio.helpers import DictType
from opentelemetry.trace import SpanKind

from . import tracing
from .s3_small_put import SmallPuts

P = ParamSpec("P")
T = TypeVar("T")

PART_SIZE = 5 * 1024 * 1024  # S3's smallest part: less memory per part in flight
PARTS_IN_FLIGHT = 3  # parts sent at once (hides S3's per-part latency); memory ~ (this + 1) parts
DOWNLOAD_CHUNK = 4 * 1024 * 1024
# below this, hashing on the event loop is cheaper than a hop to a thread
_HASH_INLINE = 256 * 1024


class _UnsignedBodies(Minio):
    """The SDK's client, but a request's body is sent as UNSIGNED-PAYLOAD (SigV4 signs the
    method, path, query and headers, not the body) and the SDK computes no Content-MD5 for it:
    over plain HTTP the SDK would otherwise hash every body with SHA-256 for the signature,
    over HTTPS with MD5, and the server would hash it again to check. An upload's body is
    hashed once, by put_stream. What that gives up: over plain HTTP the bytes themselves are
    not authenticated on the way to S3 (TCP's checksum still guards against corruption): the
    S3 endpoint must be on the deployment's private network or use HTTPS (TLS authenticates
    the bytes), docs/configuration.md (S3_SECURE). A Content-MD5 the caller sets (S3 requires one on some
    calls, e.g. DeleteObjects) is kept."""

    def _build_headers(self, host: str, headers: DictType | None = None, body: bytes | None = None,
                       creds: Credentials | None = None) -> tuple[DictType, datetime]:
        built, date = super()._build_headers(host, headers, None, creds)
        if body:
            built["Content-Length"] = str(len(body))
            if creds:
                built["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
        return built, date


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"body exceeds {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class StoredBlob:
    key: str
    size: int
    sha256: str


class BlobStore:
    def __init__(self, endpoint: str, access_key: str, secret_key: str, bucket: str, secure: bool = False,
                 threads: int = 16, connect_timeout: float = 3.0, read_timeout: float = 30.0) -> None:
        # the SDK's own client waits 5 minutes to connect and retries 5 times: an S3 server
        # that is down or stuck would hold a request that long. Ours fails within about
        # connect_timeout (twice, with one retry) or read_timeout, and the request gets a 503
        # (faults.py); one connection per worker thread.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            maxsize=threads,
            cert_reqs="CERT_REQUIRED" if secure else "CERT_NONE",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=urllib3.Retry(total=1, connect=1, read=0, backoff_factor=0.2, status_forcelist=[502, 503, 504]),
        )
        self._client = _UnsignedBodies(endpoint, access_key=access_key, secret_key=secret_key, secure=secure,
                                       http_client=http)
        self.bucket, self.secure = bucket, secure
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="s3")
        self._small = SmallPuts(endpoint, access_key, secret_key, bucket, secure,
                                connect_timeout=connect_timeout, read_timeout=read_timeout, connections=threads)
        self._region: str | None = None

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    async def _s3(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A call of the S3 SDK (`fn`, named after the S3 operation) in a worker thread; with
        traces on, a CLIENT span around it."""
        with tracing.span(f"S3 {fn.__name__.strip('_')}", SpanKind.CLIENT,
                          {"rpc.system": "aws-api", "rpc.service": "S3", "rpc.method": fn.__name__.strip("_"),
                           "aws.s3.bucket": self.bucket}):
            return await self._run(fn, *args, **kwargs)

    async def _put_small(self, key: str, data: bytes, content_type: str) -> None:
        if self._region is None:  # the SDK's answer (configured, or asked of S3 once)
            self._region = await self._run(self._client._get_region, self.bucket)
        with tracing.span("S3 put_object", SpanKind.CLIENT,
                          {"rpc.system": "aws-api", "rpc.service": "S3", "rpc.method": "put_object",
                           "aws.s3.bucket": self.bucket}):
            await self._small.put(key, data, content_type, self._region)

    async def close(self) -> None:
        await self._small.close()

    async def ensure_bucket(self) -> None:
        if not await self._s3(self._client.bucket_exists, self.bucket):
            try:
                await self._s3(self._client.make_bucket, self.bucket)
            except S3Error as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    async def reachable(self) -> bool:
        try:
            return await asyncio.wait_for(self._s3(self._client.bucket_exists, self.bucket), timeout=3)
        except Exception:
            return False

    async def put_stream(self, key: str, read_chunk: Callable[[int], Awaitable[bytes]],
                         limit: int | None = None, content_type: str = "application/octet-stream") -> StoredBlob:
        """Streams an async source (`read_chunk(n)` returns at most n bytes, b"" at the end)
        into S3, counting and hashing on the way. Raises BodyTooLarge as soon as more than
        `limit` bytes arrive. On any failure nothing stays behind: an unfinished multipart
        upload is aborted."""
        total = 0
        sha = hashlib.sha256()
        carry = bytearray()  # what a source gave beyond a part (sources may ignore n)

        async def fill() -> bytearray:
            nonlocal total, carry
            buf, carry = carry, bytearray()
            while len(buf) < PART_SIZE:
                chunk = await read_chunk(PART_SIZE - len(buf))
                if not chunk:
                    break
                total += len(chunk)
                if limit is not None and total > limit:
                    raise BodyTooLarge(limit)
                buf += chunk
            if len(buf) > PART_SIZE:
                carry = buf[PART_SIZE:]
                del buf[PART_SIZE:]
            return buf

        part = await fill()
        if len(part) < PART_SIZE:  # the whole body fits in one part: a single PUT
            if len(part) <= _HASH_INLINE:  # small: hashed and sent from the event loop
                sha.update(part)
                await self._put_small(key, bytes(part), content_type)
            else:
                await self._run(sha.update, part)
                await self._s3(self._client.put_object, self.bucket, key, io.BytesIO(part), len(part),
                                content_type=content_type)
            return StoredBlob(key=key, size=total, sha256=sha.hexdigest())

        upload_id = await self._s3(self._client._create_multipart_upload, self.bucket, key,
                                    {"Content-Type": content_type})
        sending: list[asyncio.Future[str]] = []  # parts in flight, oldest first
        try:
            hashing: asyncio.Future[None] | None = None
            etags: list[str] = []
            while part:
                number = len(etags) + len(sending) + 1
                if hashing is not None:
                    await hashing  # the running hash sees the parts in order
                hashing = asyncio.ensure_future(self._run(sha.update, part))
                # minio annotates `data` as bytes but only reads it: the part goes as it is,
                # a bytes copy would hold every part in flight twice
                sending.append(asyncio.ensure_future(self._s3(
                    self._client._upload_part, self.bucket, key, cast(bytes, part), None, upload_id, number)))
                if len(sending) >= PARTS_IN_FLIGHT:
                    etags.append(await sending.pop(0))
                part = await fill() if len(part) == PART_SIZE else bytearray()
            while sending:
                etags.append(await sending.pop(0))
            if hashing is not None:  # always: the body had more than one part
                await hashing
            parts = [Part(n, etag) for n, etag in enumerate(etags, start=1)]
            await self._s3(self._client._complete_multipart_upload, self.bucket, key, upload_id, parts)
        except BaseException:
            for future in sending:  # never leave a part in flight behind
                with contextlib.suppress(BaseException):
                    await future
            with contextlib.suppress(Exception):
                await asyncio.shield(self._s3(self._client._abort_multipart_upload, self.bucket, key, upload_id))
            raise
        return StoredBlob(key=key, size=total, sha256=sha.hexdigest())

    async def stream(self, key: str, offset: int = 0, length: int = 0, chunk_size: int = DOWNLOAD_CHUNK
                     ) -> AsyncIterator[bytes]:
        """Yields the blob in chunks; the next chunk is read from S3 while the caller sends
        the current one."""
        response = await self._s3(self._client.get_object, self.bucket, key, offset=offset, length=length)
        try:
            reading = asyncio.ensure_future(self._run(response.read, chunk_size))
            while True:
                chunk = await reading
                if not chunk:
                    break
                reading = asyncio.ensure_future(self._run(response.read, chunk_size))
                yield chunk
        finally:
            if not reading.done():
                with contextlib.suppress(BaseException):
                    await reading
            response.close()
            response.release_conn()

    async def presigned_get(self, key: str, expires: timedelta = timedelta(minutes=5)) -> str:
        """Path and query of a presigned GET of the blob: whoever holds it may read that blob
        (and only that one) from this store's endpoint until it expires; signed for the
        endpoint's host:port, which the reader must send as Host."""
        url = urlsplit(await self._run(self._client.presigned_get_object, self.bucket, key, expires=expires))
        return f"{url.path}?{url.query}"

    async def exists(self, key: str) -> bool:
        try:
            await self._s3(self._client.stat_object, self.bucket, key)
            return True
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return False
            raise

    async def delete(self, key: str) -> None:
        """Idempotent: deleting a missing blob is fine."""
        try:
            await self._s3(self._client.remove_object, self.bucket, key)
        except S3Error as exc:
            if exc.code not in ("NoSuchKey", "NoSuchObject", "NotFound"):
                raise

    async def copy(self, source_key: str, target_key: str) -> None:
        """Server-side copy inside the bucket: the bytes never pass through the service, and
        the two objects share nothing afterwards."""
        await self._s3(self._client.copy_object, self.bucket, target_key, CopySource(self.bucket, source_key))

    async def delete_many(self, keys: list[str], batch: int = 250, parallel: int = 4) -> int:
        """Batched deletes (S3 DeleteObjects, `batch` keys a request, `parallel` requests at
        a time: a server deletes one request's keys one after another); idempotent.
        Returns how many keys were asked for; raises if the server reports a failure."""
        def remove_objects(chunk: list[str]) -> list[str]:
            errors = self._client.remove_objects(self.bucket, (DeleteObject(k) for k in chunk))
            return [f"{e.name}: {e.code}" for e in errors if e.code not in ("NoSuchKey", "NoSuchObject", "NotFound")]
        failed: list[str] = []
        chunks = [keys[start:start + batch] for start in range(0, len(keys), batch)]
        for wave in range(0, len(chunks), parallel):
            for errors in await asyncio.gather(*(self._s3(remove_objects, c) for c in chunks[wave:wave + parallel])):
                failed += errors
        if failed:
            raise RuntimeError(f"S3 refused to delete {len(failed)} object(s): {failed[:5]}")
        return len(keys)

    async def delete_prefix(self, prefix: str) -> int:
        def remove_prefix() -> int:
            count = 0
            for obj in self._client.list_objects(self.bucket, prefix=prefix, recursive=True):
                self._client.remove_object(self.bucket, obj.object_name)
                count += 1
            return count
        return await self._s3(remove_prefix)

    async def list_keys(self, prefix: str = "") -> list[str]:
        def list_objects() -> list[str]:
            return [o.object_name for o in self._client.list_objects(self.bucket, prefix=prefix, recursive=True)]
        return await self._s3(list_objects)
