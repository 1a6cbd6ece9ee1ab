"""Each account's ledger: one document per account holding usage, quota reservations, the
in-flight operations and the change counter — so every quota decision is one atomic
single-document update (FerretDB has no transactions).

Fields of an account document (besides the entitlement projection, see FilesStore):
  used_bytes, file_count            what the newest version of each live file takes (settled)
  reserved_bytes, reserved_files    held by unfinished operations
  committed_bytes, committed_files  used + reserved: what quota checks compare, never above the plan
  stored_bytes                      every version document the account keeps (live, old, trashed,
                                    delete markers), each at its size + RECORD_BYTES: what the
                                    storage bound compares (docs/adr/0005-storage-bound.md); a crash
                                    between a removal and its decrement leaves it high, never low
  ops.<op_id>                       an unfinished operation: {kind, bytes, files, expires, file,
                                    version_id, blob_key, floor} (a bulk upload: `targets`, its
                                    files' {key, version_id}); the reconciler finishes or undoes
                                    operations whose owner stopped renewing them (crash)
  op_count                          number of entries in ops (cheap "anything in flight?" query)
  change_seq                        last number drawn for the changes feed
  reset_seq                         change_seq when all data was deleted: older cursors must resync
  heads_purged                      grows before head documents are deleted without a change number
                                    (a trashed file purged, store.delete_heads_still_at): listings
                                    kept in memory read every head again (listing.py)
  usage_seq                         grows with every change of usage; storage-usage-changed with
                                    the new absolute figures is written in the same update
  backup_off                        types whose backup the user switched off
  frozen                            the op id of a "delete all my data" in progress
"""

import time
from collections.abc import Callable
from typing import Any, Protocol

from pymongo import ReturnDocument
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.errors import DuplicateKeyError
from pymongo.results import InsertOneResult, UpdateResult

from osmcloud_common.outbox import with_events

from .model import NO_USAGE, Usage

OP_TTL_SECONDS = 600.0  # an operation not renewed for this long is taken for dead

UsageEvent = Callable[[int, int, int, int | None], dict[str, Any]]  # (sequence, used, files, quota) -> outbox entry
# what a read-modify-write plans from the document it read (None: missing): None (no change)
# or (guard, update), the guard being the part of the filter that must still hold
Plan = tuple[dict[str, Any], dict[str, Any]] | None


class AccountsCollection(Protocol):
    """What the ledger needs of the accounts collection: osmcloud_common.mongo's
    SerializedCollection (its `modify` is the atomic read-modify-write) over PyMongo's."""

    async def find_one(self, _filter: dict[str, Any], _projection: dict[str, Any] | None = None, /
                       ) -> dict[str, Any] | None: ...

    def find(self, _filter: dict[str, Any], _projection: dict[str, Any] | None = None, /
             ) -> AsyncCursor[dict[str, Any]]: ...

    async def insert_one(self, _document: dict[str, Any], /) -> InsertOneResult: ...

    async def update_one(self, _filter: dict[str, Any], _update: dict[str, Any], /) -> UpdateResult: ...

    async def find_one_and_update(self, _filter: dict[str, Any], _update: dict[str, Any], /, *,
                                  return_document: bool) -> dict[str, Any] | None: ...

    async def modify(self, _doc_id: str, _build: Callable[[dict[str, Any] | None], Plan],
                     _guess: dict[str, Any] | None = None, /) -> dict[str, Any] | None: ...


def busy_files(account: dict[str, Any], but: str | None = None) -> set[str]:
    """The keys of the files that operations in flight (except `but`) are changing: an
    operation's `file`, or each of a bulk upload's `targets` ({key, version_id})."""
    busy: set[str] = set()
    for op_id, op in (account.get("ops") or {}).items():
        if op_id == but:
            continue
        if op.get("file"):
            busy.add(op["file"])
        busy.update(t["key"] for t in op.get("targets") or ())
    return busy


def _zero_usage(user_id: str) -> dict[str, Any]:
    return {"_id": user_id, "user_id": user_id, "entitlement": None, "entitlement_as_of": None,
            "used_bytes": 0, "file_count": 0, "reserved_bytes": 0, "reserved_files": 0,
            "committed_bytes": 0, "committed_files": 0, "usage_seq": 0, "stored_bytes": 0,
            "ops": {}, "op_count": 0, "change_seq": 0, "reset_seq": 0,
            "backup_off": [], "frozen": None}


class Ledger:
    def __init__(self, accounts: AccountsCollection, now: Callable[[], float] = time.time,
                 ttl: float = OP_TTL_SECONDS) -> None:
        # operational deadlines use the system clock, not the (test-movable) business clock:
        # moving time forward by 30 days in a test must not kill uploads in flight
        self.accounts, self.now, self.ttl = accounts, now, ttl
        # when this process last extended each of its operations' leases (see `hold`)
        self._leased: dict[str, float] = {}

    async def get(self, user_id: str) -> dict[str, Any]:
        doc = await self.accounts.find_one({"_id": user_id}, {"_outbox": 0})
        return {**_zero_usage(user_id), **(doc or {})}

    # ------------------------------------------------------------ operations
    async def begin(self, user_id: str, op_id: str, op: dict[str, Any], *, quota: int, max_files: int | None,
                    bytes_: int, files: int, floor: int | None = None,
                    quota_field: str = "quota_bytes", draws: int = 1) -> dict[str, Any] | None:
        """Records an operation and reserves `bytes_` and `files` for it, atomically and only
        if the account stays within `quota` (the entitlement's `quota_field`) / `max_files` and
        no "delete all" runs. With
        `floor` (the change_seq the caller last saw) it also draws one change number, which
        is the returned document's change_seq (`draws` numbers: the returned one is the last).
        None when refused."""
        condition: dict[str, Any] = {"_id": user_id, "frozen": None}
        if bytes_:
            condition[f"entitlement.{quota_field}"] = quota
            condition["committed_bytes"] = {"$lte": quota - bytes_}
        if files and max_files is not None:
            condition["committed_files"] = {"$lte": max_files - files}
        entry = {**op, "bytes": bytes_, "files": files, "expires": self.now() + self.ttl, "floor": floor}
        inc = {"committed_bytes": bytes_, "reserved_bytes": bytes_, "committed_files": files,
               "reserved_files": files, "op_count": 1}
        if floor is not None:
            inc["change_seq"] = draws
        began = await self.accounts.find_one_and_update(
            condition, {"$inc": inc, "$set": {f"ops.{op_id}": entry}},
            return_document=ReturnDocument.AFTER)
        if began is not None:
            self._leased[op_id] = entry["expires"] - self.ttl
        return began

    async def grow(self, user_id: str, op_id: str, quota: int, more: int) -> bool:
        """Reserves `more` bytes for a streaming upload, within the quota; renews the op."""
        result = await self.accounts.update_one(
            {"_id": user_id, f"ops.{op_id}.expires": {"$gt": self.now()}, "frozen": None,
             "entitlement.quota_bytes": quota, "committed_bytes": {"$lte": quota - more}},
            {"$inc": {"committed_bytes": more, "reserved_bytes": more, f"ops.{op_id}.bytes": more},
             "$set": {f"ops.{op_id}.expires": self.now() + self.ttl}})
        return self._extended(op_id, result.modified_count == 1)

    async def renew(self, user_id: str, op_id: str) -> bool:
        now = self.now()
        result = await self.accounts.update_one(
            {"_id": user_id, f"ops.{op_id}.expires": {"$gt": now}},
            {"$set": {f"ops.{op_id}.expires": now + self.ttl}})
        return self._extended(op_id, result.modified_count == 1, now)

    async def hold(self, user_id: str, op_id: str) -> bool:
        """Before an operation moves a head: makes sure it is still alive and stays so for
        longer than the move takes, so the reconciler cannot undo it (remove its version and
        blob) while the head moves to them. Renews it unless this process extended it within
        the last quarter of its time-to-live (then most of it is left: no database command).
        False when it expired and was taken over — the caller must give up, not move the head."""
        leased = self._leased.get(op_id)
        if leased is not None and self.now() - leased < self.ttl / 4:
            return True
        if await self.renew(user_id, op_id):
            return True
        self._leased.pop(op_id, None)
        return False

    def _extended(self, op_id: str, done: bool, at: float | None = None) -> bool:
        if done:
            now = self.now() if at is None else at
            if len(self._leased) >= 10_000:  # ops finished elsewhere (another replica's reconciler)
                self._leased = {k: t for k, t in self._leased.items() if now - t < self.ttl}
            self._leased[op_id] = now
        return done

    async def draw(self, user_id: str, op_id: str, floor: int, count: int = 1) -> int | None:
        """Draws `count` change numbers for a live operation (renewing it) and returns the
        last; None if the operation expired or "delete all" runs (the caller must give up)."""
        doc = await self.accounts.find_one_and_update(
            {"_id": user_id, f"ops.{op_id}.expires": {"$gt": self.now()},
             "$or": [{"frozen": None}, {"frozen": op_id}]},
            {"$inc": {"change_seq": count},
             "$set": {f"ops.{op_id}.floor": floor, f"ops.{op_id}.expires": self.now() + self.ttl}},
            return_document=ReturnDocument.AFTER)
        if doc is None:
            return None
        self._extended(op_id, True)
        return int(doc["change_seq"])

    async def finish(self, user_id: str, op_id: str, reserved: Usage, delta: Usage = NO_USAGE,
                     events: list[dict[str, Any]] | None = None,
                     usage_event: UsageEvent | None = None, began: dict[str, Any] | None = None
                     ) -> dict[str, Any] | None:
        """Ends an operation: its reservation (`reserved`: the bytes and files `begin` and
        `grow` reserved) is replaced by the usage it really changed (`delta`, NO_USAGE to just
        release; `delta.stored`: the change of stored_bytes), and a change of usage records
        storage-usage-changed with the new absolute figures in the same write. Idempotent: once
        the op is gone nothing happens and None is returned — which is how a second finisher
        (the reconciler) knows. `began`: the account as `begin` returned it, tried before a
        read (usually nothing changed the usage since: one command instead of two)."""
        self._leased.pop(op_id, None)

        def build(doc: dict[str, Any] | None) -> Plan:
            op = ((doc or {}).get("ops") or {}).get(op_id)
            if doc is None or op is None or op.get("bytes") != reserved.bytes or op.get("files") != reserved.files:
                return None
            update: dict[str, Any] = {
                "$inc": {"committed_bytes": delta.bytes - reserved.bytes, "reserved_bytes": -reserved.bytes,
                         "committed_files": delta.files - reserved.files, "reserved_files": -reserved.files,
                         "op_count": -1},
                "$unset": {f"ops.{op_id}": ""}}
            if delta.stored:
                update["$inc"]["stored_bytes"] = delta.stored
            entries = list(events or [])
            if delta.bytes or delta.files:
                update["$set"] = {"used_bytes": doc["used_bytes"] + delta.bytes,
                                  "file_count": doc["file_count"] + delta.files,
                                  "usage_seq": doc.get("usage_seq", 0) + 1}
                if usage_event is not None:
                    entries.append(self._usage_entry(doc, update["$set"], usage_event))
            if entries:
                update = with_events(update, entries)
            return {"usage_seq": doc.get("usage_seq", 0), f"ops.{op_id}.bytes": reserved.bytes}, update
        return await self.accounts.modify(user_id, build, began)

    @staticmethod
    def _usage_entry(doc: dict[str, Any], figures: dict[str, Any], usage_event: UsageEvent) -> dict[str, Any]:
        quota = (doc.get("entitlement") or {}).get("quota_bytes")
        return usage_event(figures["usage_seq"], figures["used_bytes"], figures["file_count"], quota)

    async def add_stored(self, user_id: str, delta: int) -> None:
        """A change of stored_bytes outside an operation (versions removed for good)."""
        if delta:
            await self.accounts.update_one({"_id": user_id}, {"$inc": {"stored_bytes": delta}})

    async def add_events(self, user_id: str, events: list[dict[str, Any]]) -> None:
        if events:
            await self.accounts.update_one({"_id": user_id}, with_events({"$set": {"user_id": user_id}}, events))

    # ------------------------------------------------------------ settings and "delete all"
    async def ensure(self, user_id: str) -> None:
        try:
            await self.accounts.insert_one(_zero_usage(user_id))
        except DuplicateKeyError:
            pass

    async def set_backup(self, user_id: str, file_type: str, enabled: bool) -> None:
        await self.ensure(user_id)
        op = {"$pullAll": {"backup_off": [file_type]}} if enabled else {"$addToSet": {"backup_off": file_type}}
        await self.accounts.update_one({"_id": user_id}, op)

    async def freeze(self, user_id: str, op_id: str, op: dict[str, Any]) -> bool:
        """Starts "delete all my data": no new operation may begin until it ends."""
        entry = {**op, "bytes": 0, "files": 0, "expires": self.now() + self.ttl, "floor": None}
        result = await self.accounts.update_one(
            {"_id": user_id, "frozen": None},
            {"$set": {"frozen": op_id, f"ops.{op_id}": entry}, "$inc": {"op_count": 1}})
        return result.modified_count == 1

    async def clear_usage(self, user_id: str, op_id: str, events: list[dict[str, Any]],
                          usage_event: UsageEvent) -> dict[str, Any] | None:
        """Ends "delete all": usage to zero (reservations of operations still in flight stay),
        older cursors must resync, the account is open again."""
        def build(doc: dict[str, Any] | None) -> Plan:
            if doc is None or op_id not in (doc.get("ops") or {}):
                return None
            figures = {"used_bytes": 0, "file_count": 0, "usage_seq": doc.get("usage_seq", 0) + 1}
            # the reset takes a change number of its own: cursors below it must resync
            update = {"$set": {**figures, "reset_seq": doc.get("change_seq", 0) + 1, "frozen": None,
                               "stored_bytes": 0},
                      "$inc": {"committed_bytes": -doc["used_bytes"], "committed_files": -doc["file_count"],
                               "op_count": -1, "change_seq": 1},
                      "$unset": {f"ops.{op_id}": ""}}
            return ({"usage_seq": doc.get("usage_seq", 0)},
                    with_events(update, [*events, self._usage_entry(doc, figures, usage_event)]))
        return await self.accounts.modify(user_id, build)

    # ------------------------------------------------------------ reconciliation
    async def operations_of(self, user_ids: list[str]) -> frozenset[str]:
        """The ids of the operations in flight in these accounts (one query)."""
        docs = await self.accounts.find({"_id": {"$in": user_ids}, "op_count": {"$gt": 0}}, {"ops": 1}).to_list(None)
        return frozenset(op_id for doc in docs for op_id in (doc.get("ops") or {}))

    async def with_operations(self) -> list[dict[str, Any]]:
        return await self.accounts.find({"op_count": {"$gt": 0}}, {"_outbox": 0}).to_list(None)

