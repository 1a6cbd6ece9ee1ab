"""The PUT of a small object held in memory, from the event loop.

The S3 SDK (minio) is synchronous: each of its calls runs in a worker thread, and for a small
object the hop to the thread, urllib3's request building and the thread's wake-ups cost more
CPU than the object's bytes — measured at ~1.6 ms of the files process's CPU per 10 KiB PUT,
about half of what a small upload costs files (docs/benchmarks.md). Here the same request —
path-style URL, SigV4 with the SDK's own signer, the body as UNSIGNED-PAYLOAD as everywhere
(blobstore._UnsignedBodies) — goes out over aiohttp on the service's loop.

Failures look as the SDK's do, so callers and faults.py need not tell the two paths apart:
an S3 error answer becomes the SDK's S3Error (or ServerError when a 5xx carries no S3 error
document), a connection that cannot be made or answered in time becomes BlobStoreUnreachable."""

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import aiohttp
from minio.credentials.credentials import Credentials
from minio.error import S3Error, ServerError
from minio.signer import sign_v4_s3
from minio.time import to_amz_date
from yarl import URL

from .faults import BlobStoreUnreachable


class SmallPuts:
    def __init__(self, endpoint: str, access_key: str, secret_key: str, bucket: str, secure: bool, *,
                 connect_timeout: float, read_timeout: float, connections: int) -> None:
        self._base = f"{'https' if secure else 'http'}://{endpoint}"
        self._host = endpoint
        self._keys, self.bucket = (access_key, secret_key), bucket
        self._credentials: Credentials | None = None  # made at the first PUT (the SDK refuses empty keys)
        self._timeout = aiohttp.ClientTimeout(sock_connect=connect_timeout, sock_read=read_timeout)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:  # made in the loop that uses it
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections), timeout=self._timeout,
                skip_auto_headers=("Content-Type",))
        return self._session

    async def put(self, key: str, data: bytes, content_type: str, region: str) -> None:
        """Stores `data` as `key`; one retry when the connection fails (the body is in memory)."""
        path = f"/{self.bucket}/{quote(key, safe='/~')}"
        if self._credentials is None:
            self._credentials = Credentials(*self._keys)
        for attempt in (1, 2):
            date = datetime.now(UTC)
            signed = sign_v4_s3(
                method="PUT", url=urlsplit(self._base + path), region=region,
                headers={"Host": self._host, "Content-Type": content_type, "Content-Length": str(len(data)),
                         "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-date": to_amz_date(date)},
                credentials=self._credentials, content_sha256="UNSIGNED-PAYLOAD", date=date)
            try:
                async with self._client().put(URL(self._base + path, encoded=True), data=data,
                                              headers={k: str(v) for k, v in signed.items()}) as reply:
                    if reply.status < 300:
                        return
                    raise _error(reply.status, await reply.read(), key, self.bucket)
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                if attempt == 2 or not isinstance(exc, aiohttp.ClientConnectorError):
                    raise BlobStoreUnreachable(f"S3 at {self._host}: {exc!r}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _error(status: int, body: bytes, key: str, bucket: str) -> Exception:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        root = None
    if root is None or root.findtext("Code") is None:
        if status >= 500:
            return ServerError(f"S3 answered {status} to a PUT of {key}", status)
        return S3Error(None, f"HTTP{status}", body[:200].decode(errors="replace"),  # type: ignore[arg-type]
                       key, None, None, bucket, key)
    # the SDK's own error, as it raises it (its `response` is urllib3's; none here)
    return S3Error(None, root.findtext("Code"), root.findtext("Message"),  # type: ignore[arg-type]
                   root.findtext("Resource") or key, root.findtext("RequestId"), root.findtext("HostId"), bucket, key)
