"""Which exceptions mean "a dependency is away" (the database, the blob store, Kafka, another
service): a request that meets one is answered 503 with JSON and Retry-After by the HTTP
middleware (http.py), never 500 - the client may retry, nothing is wrong with its request.

The drivers' own errors are recognised where they are raised (PyMongo's connection failures,
urllib3's for the S3 SDK, aiohttp's for calls to other services, aiokafka's), as are the
blob store's answers that mean "not now" (S3 5xx, a full disk), also when wrapped in another
exception (its __cause__ / __context__)."""

from __future__ import annotations

import asyncio
import errno

# S3 error codes that say "the store cannot take this now", not "your request is wrong"
S3_UNAVAILABLE_CODES = frozenset({"ServiceUnavailable", "SlowDown", "InternalError", "RequestTimeout",
                                  "XMinioServerNotInitialized"})
# ... and those of a full disk (versitygw answers 507 InsufficientStorage when its directory's
# filesystem is full; MinIO XMinioStorageFull)
S3_FULL_CODES = frozenset({"InsufficientStorage", "XMinioStorageFull", "StorageFull"})
DISK_FULL = "storage (disk full)"
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class BlobStoreUnreachable(ConnectionError):
    """The blob store could not be reached or did not answer in time (s3_small_put.py)."""


def _classify_one(exc: BaseException) -> str | None:
    if isinstance(exc, BlobStoreUnreachable):
        return "blob store"
    module = type(exc).__module__.split(".")[0]
    if module == "pymongo":
        from pymongo.errors import ConnectionFailure, ExecutionTimeout, WaitQueueTimeoutError

        if isinstance(exc, (ConnectionFailure, ExecutionTimeout, WaitQueueTimeoutError)):
            return "database"
        return None
    if module == "urllib3":  # the S3 SDK (minio) speaks through urllib3
        from urllib3.exceptions import HTTPError

        return "blob store" if isinstance(exc, HTTPError) else None
    if module == "minio":
        from minio.error import S3Error, ServerError

        if isinstance(exc, ServerError):
            return "blob store"
        if isinstance(exc, S3Error) and exc.code in S3_FULL_CODES:
            return DISK_FULL
        if isinstance(exc, S3Error) and exc.code in S3_UNAVAILABLE_CODES:
            return "blob store"
        return None
    if module == "aiokafka":
        from aiokafka.errors import (
            KafkaConnectionError,
            KafkaTimeoutError,
            NoBrokersAvailable,
        )

        return "event bus" if isinstance(exc, (KafkaConnectionError, KafkaTimeoutError, NoBrokersAvailable)) else None
    if module == "aiohttp":
        import aiohttp

        if isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ServerTimeoutError)):
            return "another service"
        return None
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        return DISK_FULL
    if isinstance(exc, (ConnectionError, asyncio.TimeoutError, TimeoutError)):
        return "a dependency"
    return None


def unavailable_dependency(exc: BaseException) -> str | None:
    """What is away ("database", "blob store", "event bus", "another service", DISK_FULL, ...) when `exc`
    (or an exception it was raised from) means a dependency cannot answer now; else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        found = _classify_one(current)
        if found:
            return found
        current = current.__cause__ or current.__context__
    return None
