"""Fakes of the files service's ports, for service-layer tests that run in milliseconds:

- `MemoryCollection`: an in-memory collection that answers the part of MongoDB's query and
  update language files' adapters use (so the real FilesStore and Ledger — their conditional,
  single-document updates are the ledger's whole guarantee — run on it unchanged);
- `MemoryBlobs`: the blob store as a dict; `RecordingPublisher`: the event publisher, which
  makes real outbox entries and records wake-ups and hand-overs; the clock is libs' FixedClock;
- `Crash` and `crash_when`: a process that dies at a chosen write — it and everything the same
  process calls afterwards raise Crash (a BaseException, as a dying process runs no clean-up),
  while the survivor's reconciler works on the same data through the unbroken collections.
"""

import copy
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from osmcloud_common.blobstore import BodyTooLarge, StoredBlob
from osmcloud_common.clock import FixedClock
from osmcloud_common.events import Payload, make_event
from osmcloud_common.mongo import SerializedCollection
from osmcloud_common.outbox import OUTBOX_FIELD, outbox_entry
from osmcloud_files.bootstrap import FilesServices, bootstrap
from osmcloud_files.domain import FileRef
from osmcloud_files.ledger import OP_TTL_SECONDS, Ledger
from osmcloud_files.model import Head
from osmcloud_files.ports import BlobMissing
from osmcloud_files.store import FilesStore
from osmcloud_files.uploads import UploadRequest

MISSING = object()


# ---------------------------------------------------------------- documents
def _values(doc: Any, path: list[str]) -> list[Any]:
    """Every value at `path`, through arrays (as MongoDB matches "a.b" on an array of a's)."""
    if not path:
        return [doc]
    if isinstance(doc, list):
        return [v for item in doc for v in _values(item, path)]
    if not isinstance(doc, dict) or path[0] not in doc:
        return [MISSING]
    return _values(doc[path[0]], path[1:])


def _order(value: Any) -> tuple[int, Any]:
    return (0, 0) if value is None or value is MISSING else (1, value)


def _match_value(value: Any, condition: Any) -> bool:
    if isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition):
        return all(_operator(value, op, arg) for op, arg in condition.items())
    if condition is None:
        return value is None or value is MISSING
    if isinstance(value, list) and not isinstance(condition, list):
        return condition in value
    return bool(value == condition)


def _operator(value: Any, op: str, arg: Any) -> bool:
    present = value is not MISSING
    if op == "$exists":
        return present == bool(arg)
    if op == "$ne":
        return not _match_value(value, arg)
    if op == "$in":
        return any(_match_value(value, a) for a in arg)
    if op == "$nin":
        return not any(_match_value(value, a) for a in arg)
    if op == "$size":
        return isinstance(value, list) and len(value) == arg
    if not present or value is None:
        return False
    comparisons = {"$lt": value < arg, "$lte": value <= arg, "$gt": value > arg, "$gte": value >= arg} \
        if type(value) is type(arg) or (isinstance(value, (int, float)) and isinstance(arg, (int, float))) else {}
    if op not in ("$lt", "$lte", "$gt", "$gte"):
        raise NotImplementedError(f"the fake collection does not know {op}")
    return bool(comparisons.get(op, False))


def matches(doc: dict[str, Any], filter_: dict[str, Any]) -> bool:
    for key, condition in filter_.items():
        if key == "$or":
            if not any(matches(doc, f) for f in condition):
                return False
            continue
        values = _values(doc, key.split("."))
        if isinstance(condition, dict) and any(k in condition for k in ("$ne", "$nin")):
            if not all(_match_value(v, condition) for v in values):  # negations hold for every value
                return False
        elif not any(_match_value(v, condition) for v in values):
            return False
    return True


def _parent(doc: dict[str, Any], path: str, create: bool) -> tuple[dict[str, Any] | None, str]:
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        if part not in node or not isinstance(node[part], dict):
            if not create:
                return None, last
            node[part] = {}
        node = node[part]
    return node, last


def apply_update(doc: dict[str, Any], update: dict[str, Any]) -> None:
    for op, fields in update.items():
        for path, arg in fields.items():
            node, last = _parent(doc, path, create=op != "$unset")
            if op == "$set":
                assert node is not None
                node[last] = copy.deepcopy(arg)
            elif op == "$inc":
                assert node is not None
                node[last] = node.get(last, 0) + arg
            elif op == "$unset":
                if node is not None:
                    node.pop(last, None)
            elif op == "$push":
                assert node is not None
                items = arg["$each"] if isinstance(arg, dict) and "$each" in arg else [arg]
                node.setdefault(last, []).extend(copy.deepcopy(items))
            elif op == "$pullAll":
                assert node is not None
                node[last] = [v for v in node.get(last, []) if v not in arg]
            elif op == "$addToSet":
                assert node is not None
                if arg not in node.setdefault(last, []):
                    node[last].append(copy.deepcopy(arg))
            else:
                raise NotImplementedError(f"the fake collection does not know {op}")


def project(doc: dict[str, Any], projection: dict[str, Any] | None) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    if not projection:
        return doc
    if all(not v for v in projection.values()):
        return {k: v for k, v in doc.items() if k not in projection}
    return {k: v for k, v in doc.items() if k == "_id" or projection.get(k)}


# ---------------------------------------------------------------- collections
class MemoryCursor:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs

    def sort(self, key: Any, direction: int = 1) -> "MemoryCursor":
        keys = [(key, direction)] if isinstance(key, str) else list(key)
        for name, way in reversed(keys):
            self.docs.sort(key=lambda d: _order(_values(d, name.split("."))[0]), reverse=way < 0)
        return self

    def limit(self, n: int) -> "MemoryCursor":
        if n:
            self.docs = self.docs[:n]
        return self

    def batch_size(self, _: int) -> "MemoryCursor":
        return self

    async def to_list(self, _: int | None = None) -> list[dict[str, Any]]:
        return self.docs

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        async def iterate() -> AsyncIterator[dict[str, Any]]:
            for doc in self.docs:
                yield doc
        return iterate()


class MemoryCollection:
    def __init__(self, name: str) -> None:
        self.name, self.docs = name, {}  # type: str, dict[Any, dict[str, Any]]

    def _found(self, filter_: dict[str, Any]) -> list[dict[str, Any]]:
        return [d for d in self.docs.values() if matches(d, filter_)]

    async def create_index(self, *_: Any, **__: Any) -> str:
        return "index"

    async def find_one(self, filter_: dict[str, Any], projection: dict[str, Any] | None = None,
                       sort: list[tuple[str, int]] | None = None) -> dict[str, Any] | None:
        cursor = self.find(filter_, projection)
        if sort:
            cursor.sort(sort)
        return cursor.docs[0] if cursor.docs else None

    def find(self, filter_: dict[str, Any], projection: dict[str, Any] | None = None) -> MemoryCursor:
        return MemoryCursor([project(d, projection) for d in self._found(filter_)])

    async def count_documents(self, filter_: dict[str, Any]) -> int:
        return len(self._found(filter_))

    async def insert_one(self, doc: dict[str, Any]) -> SimpleNamespace:
        if doc["_id"] in self.docs:
            raise DuplicateKeyError(f"duplicate _id {doc['_id']}")
        self.docs[doc["_id"]] = copy.deepcopy(doc)
        return SimpleNamespace(inserted_id=doc["_id"])

    async def insert_many(self, docs: list[dict[str, Any]], ordered: bool = True) -> SimpleNamespace:
        """As MongoDB's unordered insert: every new document goes in, the duplicates are
        reported together (BulkWriteError, code 11000 with the index of each)."""
        assert not ordered, "the fake knows only unordered inserts (osmcloud_common.mongo.insert_new)"
        errors = []
        for index, doc in enumerate(docs):
            if doc["_id"] in self.docs:
                errors.append({"index": index, "code": 11000, "errmsg": f"duplicate _id {doc['_id']}"})
            else:
                self.docs[doc["_id"]] = copy.deepcopy(doc)
        if errors:
            raise BulkWriteError({"writeErrors": errors})
        return SimpleNamespace(inserted_ids=[d["_id"] for d in docs])

    async def update_one(self, filter_: dict[str, Any], update: dict[str, Any],
                         upsert: bool = False) -> SimpleNamespace:
        found = self._found(filter_)
        if found:
            apply_update(found[0], update)
        elif upsert:
            doc = {k: v for k, v in filter_.items() if not k.startswith("$") and not isinstance(v, dict)}
            apply_update(doc, {op: fields for op, fields in update.items() if op != "$setOnInsert"})
            doc.update(copy.deepcopy(update.get("$setOnInsert", {})))
            self.docs[doc["_id"]] = doc
        return SimpleNamespace(modified_count=1 if found else 0, matched_count=len(found[:1]))

    async def update_many(self, filter_: dict[str, Any], update: dict[str, Any]) -> SimpleNamespace:
        found = self._found(filter_)
        for doc in found:
            apply_update(doc, update)
        return SimpleNamespace(modified_count=len(found), matched_count=len(found))

    async def find_one_and_update(self, filter_: dict[str, Any], update: dict[str, Any],
                                  return_document: bool = ReturnDocument.BEFORE) -> dict[str, Any] | None:
        found = self._found(filter_)
        if not found:
            return None
        before = copy.deepcopy(found[0])
        apply_update(found[0], update)
        return copy.deepcopy(found[0]) if return_document == ReturnDocument.AFTER else before

    async def delete_one(self, filter_: dict[str, Any]) -> SimpleNamespace:
        found = self._found(filter_)[:1]
        for doc in found:
            del self.docs[doc["_id"]]
        return SimpleNamespace(deleted_count=len(found))

    async def delete_many(self, filter_: dict[str, Any]) -> SimpleNamespace:
        found = self._found(filter_)
        for doc in found:
            del self.docs[doc["_id"]]
        return SimpleNamespace(deleted_count=len(found))


# ---------------------------------------------------------------- blobs, events
class MemoryBlobs:
    secure = False

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put_stream(self, key: str, read_chunk: Callable[[int], Awaitable[bytes]], limit: int | None = None,
                         content_type: str = "application/octet-stream") -> StoredBlob:
        data = bytearray()
        while chunk := await read_chunk(64 * 1024):
            data += chunk
            if limit is not None and len(data) > limit:
                raise BodyTooLarge(limit)
        self.objects[key] = bytes(data)
        return StoredBlob(key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest())

    async def copy(self, source_key: str, target_key: str) -> None:
        if source_key not in self.objects:
            raise BlobMissing(source_key)
        self.objects[target_key] = self.objects[source_key]

    async def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    async def delete_many(self, keys: list[str], batch: int = 250, parallel: int = 4) -> int:
        for key in keys:
            self.objects.pop(key, None)
        return len(keys)

    async def delete_prefix(self, prefix: str) -> int:
        doomed = [k for k in self.objects if k.startswith(prefix)]
        for key in doomed:
            del self.objects[key]
        return len(doomed)

    async def stream(self, key: str, offset: int = 0, length: int = 0, chunk_size: int = 1024
                     ) -> AsyncIterator[bytes]:
        data = self.objects[key]
        yield data[offset:offset + length] if length else data[offset:]

    async def presigned_get(self, key: str, expires: Any = None) -> str:
        return f"/bucket/{key}?X-Amz-Signature=fake"


@dataclass
class RecordingPublisher:
    clock: FixedClock
    woken: list[str] = field(default_factory=list)
    handed_to_trash: list[dict[str, Any]] = field(default_factory=list)

    def event(self, payload: Payload, user_id: str) -> dict[str, Any]:
        return outbox_entry(make_event(payload, user_id=user_id, producer="files", occurred_at=self.clock.now()),
                            "test.")

    def head_written(self, key: str, outbox: list[dict[str, Any]] | None = None) -> None:
        self.woken.append(f"heads/{key}")

    def account_written(self, user_id: str) -> None:
        self.woken.append(f"accounts/{user_id}")

    def prune_written(self, doc_id: str) -> None:
        self.woken.append(f"prunes/{doc_id}")

    async def hand_to_trash(self, entries: list[dict[str, Any]]) -> None:
        self.handed_to_trash.extend(entries)


# ---------------------------------------------------------------- crashes
class Crash(BaseException):
    """The process died here: no except-clause of the application catches it, no clean-up runs."""


@dataclass
class CrashPlan:
    """Kills the process at the first call for which `when(collection, method, args)` holds."""
    when: Callable[[str, str, tuple[Any, ...]], bool] | None = None
    dead: bool = False

    def check(self, collection: str, method: str, args: tuple[Any, ...]) -> None:
        if self.dead or (self.when is not None and self.when(collection, method, args)):
            self.dead = True
            raise Crash(f"{collection}.{method}")


class Mortal:
    """A collection (or blob store) as one process sees it: calls pass until its plan kills it."""

    def __init__(self, target: Any, name: str, plan: CrashPlan) -> None:
        self._target, self._name, self._plan = target, name, plan
        self.name = name

    def __getattr__(self, method: str) -> Any:
        attr = getattr(self._target, method)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._plan.check(self._name, method, args)
            return attr(*args, **kwargs)
        return call


# ---------------------------------------------------------------- a world of fakes
START = {"plan": "start", "quota_bytes": 5_000_000, "max_file_bytes": 2_000_000, "max_files": 10_000,
         "allowed_types": ["FAVOURITES", "GLOBAL", "PROFILE", "OSM_EDITS", "OSM_NOTES"]}
PRO = {"plan": "pro", "quota_bytes": 10_000}


class World:
    """The data every process shares (collections, blobs, the time), and processes on it."""

    def __init__(self) -> None:
        self.heads, self.versions, self.accounts = (MemoryCollection("heads"), MemoryCollection("versions"),
                                                    MemoryCollection("accounts"))
        self.blobs = MemoryBlobs()
        self.blob_deletions, self.prunes = MemoryCollection("blob_deletions"), MemoryCollection("prunes")
        self.listings = MemoryCollection("listings")  # the listings processes saved (listing.py)
        self.clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
        self.system_time = 1_000_000.0  # the ledger's operational clock (op time-to-live)
        self.publisher = RecordingPublisher(self.clock)

    def process(self, plan: CrashPlan | None = None, max_upload_bytes: int = 50_000_000) -> FilesServices:
        """The services of one process; with a plan, a process that dies where the plan says."""
        heads, versions, accounts, prunes, blobs = (self.heads, self.versions, self.accounts, self.prunes,
                                                    self.blobs)
        if plan is not None:
            heads, versions, accounts, prunes = (Mortal(c, c.name, plan) for c in (heads, versions, accounts, prunes))
            blobs = Mortal(blobs, "blobs", plan)
        accounts_ = SerializedCollection(accounts)
        ledger = Ledger(accounts_, now=lambda: self.system_time)
        store = FilesStore(SerializedCollection(heads), SerializedCollection(versions), accounts_, ledger,
                           listings=SerializedCollection(self.listings))
        return bootstrap(clock=self.clock, events=self.publisher, store=store, ledger=ledger, blobs=blobs,
                         blob_deletions=self.blob_deletions, prunes=prunes,
                         max_upload_bytes=max_upload_bytes, reconcile_seconds=10.0)

    def later(self) -> None:
        """Past every operation's time-to-live: what the reconciler takes for abandoned."""
        self.system_time += OP_TTL_SECONDS + 60

    async def give_plan(self, user_id: str, entitlement: dict[str, Any]) -> None:
        from osmcloud_common.events import Entitlement
        await self.process().store.set_entitlement(user_id, Entitlement.model_validate(entitlement),
                                                   self.clock.now())

    def account(self, user_id: str) -> dict[str, Any]:
        return self.accounts.docs[user_id]

    def events_in(self, collection: MemoryCollection, doc_id: str) -> list[str]:
        """The types of the events recorded (not yet relayed) in one document's outbox."""
        import json
        doc = collection.docs.get(doc_id) or {}
        return [json.loads(e["value"])["type"] for e in doc.get(OUTBOX_FIELD, [])]


def settled(world: World, user: str = "u") -> dict[str, Any]:
    """The account with no operation in flight and nothing reserved, its committed usage its
    used one (asserted); returned for further checks."""
    account = world.account(user)
    assert account["ops"] == {} and account["reserved_bytes"] == 0 and account["reserved_files"] == 0
    assert account["committed_bytes"] == account["used_bytes"]
    assert account["committed_files"] == account["file_count"]
    return account


def body(data: bytes, piece: int = 1000) -> Callable[[int], Awaitable[bytes]]:
    """An upload source giving `data` in pieces."""
    view = memoryview(data)
    offset = 0

    async def read(n: int) -> bytes:
        nonlocal offset
        chunk = bytes(view[offset:offset + min(n, piece)])
        offset += len(chunk)
        return chunk
    return read


async def trashed(world: World, ref: FileRef, size: int = 700) -> tuple[Head, Head]:
    """A file of `size` bytes uploaded and deleted: (its live version, its delete marker)."""
    live, _ = await world.process().uploader.upload(UploadRequest(ref, "dev", body(b"r" * size), size,
                                                                  overwrite=True))
    marker = await world.process().ops.delete_file(ref, None, "dev", None)
    return live, marker
