"""Group commit of small single uploads (docs/adr/0013-upload-groups.md).

An app syncing many small files sends them one per request, several at once. Alone, each
upload is one ledger operation — the account read, begun and finished, the head read, the
version and the head written (docs/benchmarks.md) — and with our database that work, not the
bytes, bounds how many uploads a second the service takes.

Here a small upload (its whole body at most SMALL_FILE) joins its account's queue, and one
writer per account and process writes what is queued as ONE batch (bulk_batch.py: one ledger
operation, the heads read in one command, versions and new heads inserted in one each), then
the next batch with what arrived meanwhile. No timer: a lone upload is written at once, as a
batch of one, and uploads share a batch only when they arrive while an earlier one of the
same account is being written — so grouping adds no wait when the account is idle and saves
the most when it is busy.

Each upload keeps its own answer, the same as alone: its new head, or its refusal (conflict,
plan, backup switch, quota, size); the answer comes after its batch is written, so the next
call sees it. A second upload of a file already in the batch waits for the next one, so two
uploads of one file keep their order. Larger bodies, and uploads that find their account's
queue full, stream through the single upload (uploads.Uploader) as before."""

import asyncio
import contextvars
from dataclasses import dataclass, replace
from typing import Any

from .bulk_batch import BATCH_BYTES, BATCH_FILES, SMALL_FILE, BatchOutcome, BatchUploader, SmallFile
from .errors import UploadIncomplete
from .model import Head
from .readers import memory_reader, prefixed, read_up_to
from .uploads import Uploader, UploadRequest

QUEUED_BYTES = 4 * BATCH_BYTES  # most bytes an account's queue holds; uploads beyond stream alone

Answer = tuple[Head, dict[str, Any]]


class _Alone:
    """The batch could not begin (the plan or the usage changed since it was judged): the
    upload goes on its own."""


_ALONE = _Alone()


@dataclass
class _Queued:
    file: SmallFile
    answer: "asyncio.Future[Answer | _Alone]"


class _Queue:
    def __init__(self) -> None:
        self.waiting: list[_Queued] = []
        self.bytes = 0
        self.writer: asyncio.Task[None] | None = None


class UploadGroups:
    def __init__(self, uploader: Uploader, batches: BatchUploader, *, small: int = SMALL_FILE,
                 batch_files: int = BATCH_FILES, batch_bytes: int = BATCH_BYTES,
                 queued_bytes: int = QUEUED_BYTES) -> None:
        self.uploader, self.batches = uploader, batches
        self.small, self.batch_files, self.batch_bytes = small, batch_files, batch_bytes
        self.queued_bytes = queued_bytes
        self._queues: dict[str, _Queue] = {}

    async def upload(self, req: UploadRequest) -> Answer:
        """As Uploader.upload: (new head, account after)."""
        if req.declared_size is not None and req.declared_size > self.small:
            return await self.uploader.upload(req)
        data, whole = await read_up_to(req.read, self.small)
        if not whole:  # larger than its length said, or no length: streamed, what was read first included
            return await self.uploader.upload(replace(req, read=prefixed(data, req.read)))
        if req.declared_size is not None and req.declared_size != len(data):
            raise UploadIncomplete(f"the body has {len(data)} bytes but Content-Length said {req.declared_size}")
        alone = replace(req, read=memory_reader(data), declared_size=len(data))
        queue = self._queues.get(req.ref.user_id)
        if queue is not None and queue.bytes + len(data) > self.queued_bytes:
            return await self.uploader.upload(alone)
        answer = await self._queued(SmallFile(0, req.ref, data, req.base, req.overwrite, req.client_ms,
                                              req.device_id, req.extra(), contextvars.copy_context()))
        if isinstance(answer, _Alone):
            return await self.uploader.upload(alone)
        return answer

    async def _queued(self, file: SmallFile) -> Answer | _Alone:
        user_id = file.ref.user_id
        queue = self._queues.get(user_id)
        if queue is None:
            queue = self._queues[user_id] = _Queue()
        entry = _Queued(file, asyncio.get_running_loop().create_future())
        queue.waiting.append(entry)
        queue.bytes += len(file.data)
        if queue.writer is None:
            queue.writer = asyncio.create_task(self._write(user_id, queue))
        try:
            # shielded: a request that goes away does not cancel the batch other uploads are in
            return await asyncio.shield(entry.answer)
        except asyncio.CancelledError:
            if entry in queue.waiting:  # not taken yet: it is never written
                queue.waiting.remove(entry)
                queue.bytes -= len(file.data)
            else:  # written anyway, as an upload whose client left after sending its body
                entry.answer.add_done_callback(_retrieved)
            raise

    async def _write(self, user_id: str, queue: _Queue) -> None:
        try:
            while queue.waiting:
                taken = self._take(queue)
                try:
                    outcome = await self.batches.upload(user_id, [replace(e.file, index=i)
                                                                  for i, e in enumerate(taken)])
                except Exception as exc:  # the whole batch failed (S3 away, taken for dead): each upload hears it
                    for e in taken:
                        _answer(e, exc=exc)
                    continue
                except BaseException:
                    for e in taken:
                        e.answer.cancel()
                    raise
                _answer_all(taken, outcome)
        finally:
            queue.writer = None
            for e in queue.waiting:  # left only when this writer was cancelled (the service stops)
                e.answer.cancel()
            if self._queues.get(user_id) is queue:
                del self._queues[user_id]

    def _take(self, queue: _Queue) -> list[_Queued]:
        """The next batch: the longest-waiting uploads, one per file, within the batch's bounds."""
        taken: list[_Queued] = []
        keys: set[str] = set()
        size = 0
        for e in queue.waiting:
            if len(taken) >= self.batch_files or (taken and size + len(e.file.data) > self.batch_bytes):
                break
            if e.file.ref.key in keys:  # the same file again: in the next batch, after this one
                continue
            taken.append(e)
            keys.add(e.file.ref.key)
            size += len(e.file.data)
        chosen = {id(e) for e in taken}
        queue.waiting = [e for e in queue.waiting if id(e) not in chosen]
        queue.bytes -= size
        return taken


def _answer_all(taken: list[_Queued], outcome: BatchOutcome) -> None:
    for i, e in enumerate(taken):
        if i in outcome.heads:
            assert outcome.account is not None  # a stored file's batch was settled
            _answer(e, (outcome.heads[i], outcome.account))
        elif i in outcome.refused:
            _answer(e, exc=outcome.refused[i])
        else:
            _answer(e, _ALONE)


def _answer(entry: _Queued, result: Answer | _Alone | None = None, exc: BaseException | None = None) -> None:
    if entry.answer.done():
        return
    if exc is not None:
        entry.answer.set_exception(exc)
    else:
        assert result is not None
        entry.answer.set_result(result)


def _retrieved(answer: "asyncio.Future[Answer | _Alone]") -> None:
    """Marks the exception of an answer nobody waits for any more as seen (asyncio would log it)."""
    if not answer.cancelled():
        answer.exception()
