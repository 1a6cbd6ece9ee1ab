"""What the files service's application layer needs from the world, as ports.

The composition root (`bootstrap.py`) receives one of each: the clock, the event publisher
(the outbox and the hand-over to trash), the heads/versions store (`store.FilesStore`), the
usage ledger (`ledger.Ledger`) and the blob store. app.py passes the real adapters (Mongo,
S3, Kafka through the shared Runtime); the service-layer tests (tests/files_fakes.py) pass fakes."""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from minio.error import S3Error

from osmcloud_common.blobstore import BlobStore, StoredBlob
from osmcloud_common.clock import Clock
from osmcloud_common.events import Payload
from osmcloud_common.runtime import Runtime

__all__ = ["BlobMissing", "Blobs", "Clock", "EventPublisher", "RuntimePublisher", "S3Blobs"]


class BlobMissing(Exception):
    """The blob a copy should read is not in the store (purged meanwhile)."""


class Blobs(Protocol):
    """The blob store (osmcloud_common.blobstore.BlobStore over S3; `copy` raises BlobMissing
    for a missing source: see adapters.S3Blobs)."""

    secure: bool

    async def put_stream(self, key: str, read_chunk: Callable[[int], Awaitable[bytes]],
                         limit: int | None = None, content_type: str = ...) -> StoredBlob: ...

    async def copy(self, source_key: str, target_key: str) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def delete_many(self, keys: list[str], batch: int = ..., parallel: int = ...) -> int: ...

    async def delete_prefix(self, prefix: str) -> int: ...

    def stream(self, key: str, offset: int = 0, length: int = 0, chunk_size: int = ...) -> AsyncIterator[bytes]: ...

    async def presigned_get(self, key: str, expires: Any = ...) -> str: ...


class EventPublisher(Protocol):
    """The outbox's side the application sees: `event` makes an entry to record in the same
    write as the change that causes it; `*_written` wake the relay for a document that just
    got entries (a head, an account, a prune record of trash_reactions.py); `hand_to_trash`
    gives trash the entries the client's next read depends on (read-your-writes; Kafka still
    carries them)."""

    def event(self, payload: Payload, user_id: str) -> dict[str, Any]: ...

    def head_written(self, key: str, outbox: list[dict[str, Any]] | None = None) -> None: ...

    def account_written(self, user_id: str) -> None: ...

    def prune_written(self, doc_id: str) -> None: ...

    async def hand_to_trash(self, entries: list[dict[str, Any]]) -> None: ...


class RuntimePublisher:
    """The EventPublisher of a running service: the Runtime's outbox relay and hand-over."""

    def __init__(self, runtime: Runtime, heads: Any, accounts: Any, prunes: Any) -> None:
        self.runtime, self.heads, self.accounts, self.prunes = runtime, heads, accounts, prunes

    def event(self, payload: Payload, user_id: str) -> dict[str, Any]:
        return self.runtime.event(payload, user_id)

    def head_written(self, key: str, outbox: list[dict[str, Any]] | None = None) -> None:
        self.runtime.events_written(self.heads, key, outbox)

    def account_written(self, user_id: str) -> None:
        self.runtime.events_written(self.accounts, user_id)

    def prune_written(self, doc_id: str) -> None:
        self.runtime.events_written(self.prunes, doc_id)

    async def hand_to_trash(self, entries: list[dict[str, Any]]) -> None:
        await self.runtime.hand_over("trash", entries)


MISSING = ("NoSuchKey", "NoSuchObject", "NotFound")


class S3Blobs:
    """Blobs over the shared BlobStore (S3), with a missing copy source as BlobMissing."""

    def __init__(self, store: BlobStore) -> None:
        self._store, self.secure = store, store.secure
        self.put_stream, self.delete, self.delete_many = store.put_stream, store.delete, store.delete_many
        self.delete_prefix, self.stream, self.presigned_get = store.delete_prefix, store.stream, store.presigned_get

    async def copy(self, source_key: str, target_key: str) -> None:
        try:
            await self._store.copy(source_key, target_key)
        except S3Error as exc:
            if exc.code in MISSING:
                raise BlobMissing(source_key) from exc
            raise
