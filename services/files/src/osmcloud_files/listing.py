"""The listing of an account's live files (GET /api/files, the storage page), kept per account in
this process's memory and brought up to date at each call from the heads changed since.

Reading every head of a 10,000-file account costs the local server ~0.5 s of CPU (it decodes
each document); a listing that already holds the account's files reads only the heads whose
change number is past the one it was taken at, by their feed blocks — an index lookup, as for
the changes feed — and the account document. Why that is enough (docs/adr/0014-listing-cache.md):
- every write that changes what the listing shows of a head (a new version, a delete marker, a
  version removed for good) gives the head a change number newer than any the listing has
  passed: numbers are drawn under a floor, and a listing passes only the feed's horizon
  (domain.feed_horizon), below every operation in flight;
- the one change without a number, the purge of a trashed file, deletes head documents, and
  the account's `heads_purged` grows first (store.delete_heads_still_at): a snapshot taken at
  another value is read again whole;
- "delete all my data" moves the account's reset number, and an erased account's change
  number starts again from 0: a full read.
As a last check, with no operation in flight a listing whose count differs from the account's
settled file count is read again whole.

A full read happens at the first call, when the catch-up would span more than
CATCH_UP_NUMBERS numbers, and when the entries kept would pass the process's bound
(LISTING_CACHE_FILES); the least recently listed accounts leave first."""

import zlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pydantic_core

from osmcloud_common.keyed_locks import KeyedLocks
from osmcloud_common.logging import get_logger

from .domain import feed_horizon
from .store import FilesStore
from .views import head_view

log = get_logger(__name__)

CATCH_UP_NUMBERS = 5000  # change numbers one catch-up may span (50 feed blocks); beyond: a full read
SAVE_AFTER_NUMBERS = 1000  # a snapshot caught up this far past its saved copy is saved again
SAVED_MAX_BYTES = 8 * 1024 * 1024  # a saved copy (compressed) larger than this is not kept (~50,000 files)
FileKey = tuple[str, str]  # (type, name)


@dataclass(frozen=True)
class Entry:
    file_type: str
    size: int
    json: bytes  # the file's entry of the answer, encoded once


@dataclass
class Snapshot:
    """An account's live files as of change number `horizon` (entries whose head changed
    after it may be newer: they are read again at the next catch-up)."""
    reset_seq: int
    heads_purged: int
    horizon: int
    entries: dict[FileKey, Entry]
    saved_horizon: int | None = None  # the horizon of the copy in the database, if this process knows one
    _order: list[FileKey] | None = field(default=None, repr=False)

    def apply(self, heads: Iterable[dict[str, Any]]) -> None:
        """Takes each head document's current state: a live head's entry, or none."""
        for doc in heads:
            key = (doc["type"], doc["name"])
            head = doc.get("head")
            if head is None or head.get("deleted"):
                if self.entries.pop(key, None) is not None:
                    self._order = None
            else:
                if key not in self.entries:
                    self._order = None
                self.entries[key] = entry_of(doc)

    def ordered(self, types: list[str] | None = None) -> list[Entry]:
        """The entries by type and name (code point order, as MongoDB orders UTF-8 bytes)."""
        if self._order is None:
            self._order = sorted(self.entries)
        keys = self._order if not types else [k for k in self._order if k[0] in types]
        return [self.entries[k] for k in keys]


def entry_of(doc: dict[str, Any]) -> Entry:
    return Entry(doc["type"], int(doc["head"]["size"]), pydantic_core.to_json(head_view(doc)))


def saved_form(snapshot: Snapshot) -> dict[str, Any] | None:
    """The snapshot as saved in the database: its numbers and its entries as one compressed
    listing answer (each entry holds its type, name and size); None when that is too large."""
    data = zlib.compress(listing_json(snapshot.ordered()), 1)
    if len(data) > SAVED_MAX_BYTES:
        return None
    return {"reset_seq": snapshot.reset_seq, "heads_purged": snapshot.heads_purged, "horizon": snapshot.horizon,
            "data": data}


def from_saved(doc: dict[str, Any]) -> Snapshot:
    views = pydantic_core.from_json(zlib.decompress(doc["data"]))["files"]
    entries = {(v["type"], v["name"]): Entry(v["type"], v["size"], pydantic_core.to_json(v)) for v in views}
    return Snapshot(doc["reset_seq"], doc["heads_purged"], doc["horizon"], entries, saved_horizon=doc["horizon"])


class ListingCache:
    """Snapshots by account, at most `max_files` entries in all, least recently used first out.
    No I/O: Listings reads and decides."""

    def __init__(self, max_files: int) -> None:
        self.max_files = max_files
        self._snapshots: OrderedDict[str, Snapshot] = OrderedDict()
        self._counted: dict[str, int] = {}  # each snapshot's entries when it was last put
        self._held = 0  # their sum

    @property
    def files_held(self) -> int:
        return self._held

    def get(self, user_id: str) -> Snapshot | None:
        snapshot = self._snapshots.get(user_id)
        if snapshot is not None:
            self._snapshots.move_to_end(user_id)
        return snapshot

    def put(self, user_id: str, snapshot: Snapshot) -> None:
        """Keeps the snapshot (counted at its present size) unless it alone passes the bound,
        dropping the least recently used others until all fit."""
        self.drop(user_id)
        if len(snapshot.entries) > self.max_files:
            return
        self._snapshots[user_id] = snapshot
        self._counted[user_id] = len(snapshot.entries)
        self._held += len(snapshot.entries)
        while self._held > self.max_files:
            self.drop(next(iter(self._snapshots)))

    def drop(self, user_id: str) -> None:
        if self._snapshots.pop(user_id, None) is not None:
            self._held -= self._counted.pop(user_id)


class Listings:
    """The listing's use case: the account's live files in order, as few heads read as the
    account's snapshot allows."""

    def __init__(self, store: FilesStore, cache: ListingCache) -> None:
        self.store, self.cache = store, cache
        self.full_reads = 0  # how many calls read every head (the service tests check it)
        # one call at a time per account brings its snapshot up to date: two catch-ups
        # applying their reads out of order would leave older heads under a newer horizon
        self._turns = KeyedLocks()

    async def live_files(self, user_id: str, types: list[str] | None = None) -> list[Entry]:
        """The account's live files by type and name (of `types` only, when given)."""
        async with self._turns(user_id):
            return await self._live_files(user_id, types)

    async def _live_files(self, user_id: str, types: list[str] | None) -> list[Entry]:
        account = await self.store.ledger.get(user_id)
        ops = account.get("ops") or {}
        horizon = feed_horizon(account["change_seq"], [op["floor"] for op in ops.values()
                                                       if op.get("floor") is not None])
        reset_seq, purged = account.get("reset_seq", 0), account.get("heads_purged", 0)

        def usable(snapshot: Snapshot | None) -> bool:
            return snapshot is not None and (snapshot.reset_seq, snapshot.heads_purged) == (reset_seq, purged) \
                and 0 <= account["change_seq"] - snapshot.horizon <= CATCH_UP_NUMBERS
        snapshot = self.cache.get(user_id)
        if not usable(snapshot):
            snapshot = await self._saved(user_id) or snapshot
        if snapshot is not None and usable(snapshot):
            snapshot.apply(await self.store.heads_changed_after(user_id, snapshot.horizon, account["change_seq"]))
            snapshot.horizon = horizon
            # the settled count says nothing of the heads while an operation is in flight
            if ops or len(snapshot.entries) == account["file_count"]:
                self.cache.put(user_id, snapshot)
                if snapshot.saved_horizon is None or snapshot.horizon - snapshot.saved_horizon >= SAVE_AFTER_NUMBERS:
                    await self._save(user_id, snapshot)
                return snapshot.ordered(types)
        self.cache.drop(user_id)
        if types and snapshot is None:
            # one type's listing reads that type only, and keeps nothing
            return [entry_of(doc) for doc in await self.store.listed_heads(user_id, types)]
        self.full_reads += 1
        snapshot = Snapshot(reset_seq, purged, horizon, {})
        snapshot.apply(await self.store.listed_heads(user_id, None))
        self.cache.put(user_id, snapshot)
        await self._save(user_id, snapshot)
        return snapshot.ordered(types)

    async def _saved(self, user_id: str) -> Snapshot | None:
        """The account's listing as a process last saved it, if any (a restart, another replica)."""
        doc = await self.store.saved_listing(user_id)
        if doc is None:
            return None
        try:
            return from_saved(doc)
        except (ValueError, TypeError, KeyError, zlib.error) as exc:  # not a form this code wrote: read anew
            log.warning("saved listing unreadable; reading every head", user_id=user_id, error=repr(exc))
            return None

    async def _save(self, user_id: str, snapshot: Snapshot) -> None:
        """Saves the snapshot for processes that have none (after a full read, and after
        SAVE_AFTER_NUMBERS changes caught up); any saved copy whose purge and reset numbers
        are the account's is a valid start, an older one only a longer catch-up."""
        form = saved_form(snapshot)
        if form is not None:
            await self.store.save_listing(user_id, form)
            # a "delete all", a purge or the account's erasure that began since this snapshot was
            # read deletes the saved copy before its data, or marks the account first (frozen,
            # heads_purged, gone): a copy saved after that mark, naming what is being deleted,
            # is deleted here
            now = await self.store.account_marks(user_id)
            if now is None or now.get("frozen") or (now.get("reset_seq", 0), now.get("heads_purged", 0)) != (
                    snapshot.reset_seq, snapshot.heads_purged):
                await self.store.drop_saved_listings([user_id])
        snapshot.saved_horizon = snapshot.horizon  # too large to save: not tried again before then either


def listing_json(entries: list[Entry]) -> bytes:
    """The listing's answer, {"files": [...]}, from the entries' encoded forms."""
    return b'{"files":[' + b",".join(e.json for e in entries) + b"]}"
