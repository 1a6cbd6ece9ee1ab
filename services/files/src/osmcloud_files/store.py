"""The files service's storage adapter: heads (one per file), versions, and each account's
entitlement projection and usage (the ledger, see ledger.py) — all in files' own database.

A head document: {_id: "<user>/<type>/<name>", user_id, type, name, category,
  head: the newest version (None once its last version was deleted permanently),
  changed_seq: change number of the head's last change, changed_block: its feed block,
  reverted: true when that change was not a new version (a version deleted permanently),
  _usage_pending: [{op, bytes, files}] usage changes of operations that moved this head and
                  may not have settled yet (the reconciler settles them after a crash)}
A version document: {_id: version id, user_id, type, name, blob_key, size, checksum,
  updated_ms, client_ms, device_id, deleted, seq (change number), seq_block (its feed block), op,
  created_at}.

The changes feed reads change numbers in windows, each named by its feed blocks (`feed_block`:
a string per FEED_BLOCK numbers), because the local server answers only string conditions
from an index: {user_id, seq_block: {$in: [...]}} is an index lookup there, where a range of
seq decoded every version of the account (docs/benchmarks.md, the changes feed)."""

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, cast

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.errors import DuplicateKeyError

from osmcloud_common.events import Entitlement
from osmcloud_common.mongo import SerializedCollection, delete_all, find_by_ids, id_chunks, insert_new
from osmcloud_common.outbox import OUTBOX_FIELD, new_document_with_events, with_events

from .domain import FileRef
from .feed_blocks import FEED_BLOCK, feed_block, feed_blocks
from .ledger import Ledger
from .model import FileHead, Head, Version

FEED_BLOCKS_DONE = "feed-blocks"  # the migration record of add_feed_blocks
# the fields of a head document views.head_view does not read, and of a version document
# views.change_view does not: left out by exclusion, which costs the local server less CPU than
# naming the fields kept (it copies each document for any projection, or none) and PyMongo a
# third less decoding (docs/benchmarks.md, the changes feed)
NOT_LISTED = {"_id": 0, "user_id": 0, "reverted": 0, "changed_seq": 0, "changed_block": 0, "_usage_pending": 0,
              OUTBOX_FIELD: 0}
NOT_IN_FEED = {"user_id": 0, "version_id": 0, "blob_key": 0, "op": 0, "created_at": 0, "seq_block": 0,
               "device_num": 0}
LISTING_BATCH = 5000  # heads per round trip of the listing (~2 MiB)
FEED_READ_PARTS = 2  # reads side by side of one wide feed window (versions_after), one per core here


class HeadMoved(Exception):
    """The file's head is not the one the caller based its change on."""


Documents = AsyncCollection[dict[str, Any]]


def _serialized(collection: Any) -> SerializedCollection:
    return collection if isinstance(collection, SerializedCollection) else SerializedCollection(collection)


def _as_documents(collection: SerializedCollection) -> Documents:
    # a SerializedCollection has PyMongo's collection interface (update_one and
    # find_one_and_update serialized per document, every other method forwarded), so the
    # store's queries are checked against PyMongo's types
    return cast(Documents, collection)


class FilesStore:
    def __init__(self, heads: Any, versions: Any, accounts: Any, ledger: Ledger | None = None,
                 migrations: Any = None, listings: Any = None) -> None:
        serialized_accounts = _serialized(accounts)
        # each account's listing as a files process last saved it (listing.py); none: not kept
        self.listings = _as_documents(_serialized(listings)) if listings is not None else None
        # records of one-off data changes (add_feed_blocks); without it they run on each call
        self.migrations = _as_documents(_serialized(migrations)) if migrations is not None else None
        self.heads, self.versions = _as_documents(_serialized(heads)), _as_documents(_serialized(versions))
        self.accounts = _as_documents(serialized_accounts)
        self.ledger = ledger or Ledger(serialized_accounts)

    async def create_indexes(self) -> None:
        await self.heads.create_index([("user_id", ASCENDING), ("type", ASCENDING), ("name", ASCENDING)])
        await self.heads.create_index([("user_id", ASCENDING), ("changed_seq", ASCENDING)])
        await self.versions.create_index([("user_id", ASCENDING), ("type", ASCENDING), ("name", ASCENDING),
                                          ("updated_ms", DESCENDING)])
        await self.versions.create_index([("user_id", ASCENDING), ("seq", ASCENDING)])
        await self.versions.create_index([("user_id", ASCENDING), ("seq_block", ASCENDING), ("seq", ASCENDING)])
        # every field of the feed's head query in one index: the local server's lookup for it
        # also names the documents holding an array in each field, from an index per field it
        # adds beside each index (a field in none would make that a scan of every head)
        await self.heads.create_index([("user_id", ASCENDING), ("changed_block", ASCENDING), ("reverted", ASCENDING)])
        await self.versions.create_index([("user_id", ASCENDING), ("updated_ms", DESCENDING)])
        await self.accounts.create_index([("op_count", ASCENDING)])

    # ------------------------------------------------------------ accounts
    async def account(self, user_id: str) -> dict[str, Any]:
        return await self.ledger.get(user_id)

    async def set_entitlement(self, user_id: str, entitlement: Entitlement, as_of: datetime) -> None:
        """Applies billing's latest word; an older event never overrides a newer one."""
        await self.ledger.ensure(user_id)
        await self.accounts.update_one(
            {"_id": user_id, "$or": [{"entitlement_as_of": None}, {"entitlement_as_of": {"$lte": as_of}}]},
            {"$set": {"entitlement": entitlement.model_dump(), "entitlement_as_of": as_of}})

    # ------------------------------------------------------------ files and versions
    async def head(self, ref: FileRef) -> dict[str, Any] | None:
        """The file's head document, or None if the file never existed or has no version left."""
        doc = await self.heads.find_one({"_id": ref.key}, {"_outbox": 0})
        return doc if doc and doc.get("head") else None

    async def file_head(self, ref: FileRef) -> FileHead | None:
        """The file's head document, typed, or None if the file never existed or has no version left."""
        doc = await self.head(ref)
        return FileHead.from_doc(doc) if doc else None

    async def add_version(self, version: Version) -> None:
        await self.versions.insert_one(version.to_doc())

    async def add_versions(self, versions: list[Version]) -> None:
        """Several new version documents in one command (a bulk upload's batch)."""
        if versions:
            await self.versions.insert_many([v.to_doc() for v in versions], ordered=False)

    async def file_heads(self, refs: list[FileRef]) -> dict[str, FileHead]:
        """The head documents of these files that have a head, by FileRef.key, typed."""
        return {key: FileHead.from_doc(d) for key, d in (await self.heads_by_refs(refs)).items() if d.get("head")}

    async def insert_heads(self, new: list[tuple[FileRef, Head, list[dict[str, Any]], dict[str, Any], int]]
                           ) -> set[str]:
        """New files' head documents in one command, each as `change_head` would write it for
        a file that does not exist yet: (file, head, events, pending usage entry, change
        number). Returns the keys inserted; a file whose document exists already (created
        meanwhile, or left with no head) is not, and goes through `change_head`."""
        docs = [new_document_with_events(
            {"_id": ref.key, "user_id": ref.user_id, "type": ref.file_type, "name": ref.name,
             "category": ref.category, "head": head.to_doc(), "reverted": False, "changed_seq": seq,
             "changed_block": feed_block(seq), "_usage_pending": [pending]}, events)
            for ref, head, events, pending, seq in new]
        return {d["_id"] for d in await insert_new(self.heads, docs)}

    async def remove_version(self, version_id: str) -> None:
        await self.versions.delete_one({"_id": version_id})

    async def version(self, ref: FileRef, version_id: str) -> dict[str, Any] | None:
        return await self.versions.find_one({"_id": version_id, "user_id": ref.user_id, "type": ref.file_type,
                                             "name": ref.name})

    async def find_version(self, ref: FileRef, version_id: str) -> Version | None:
        doc = await self.version(ref, version_id)
        return Version.from_doc(doc) if doc else None

    async def change_head(self, ref: FileRef, expected_version_id: str | None, head: Head | None,
                          events: list[dict[str, Any]], *, pending: dict[str, Any] | None = None,
                          keep_pending: list[dict[str, Any]] | None = None, changed_seq: int | None = None,
                          reverted: bool = False) -> list[dict[str, Any]]:
        """Points the file at a new head version if its head is still `expected_version_id`
        (None: the file must not exist yet, or has no version left), and records `events` in
        the same write; HeadMoved otherwise. `pending` is the ledger operation's usage change,
        recorded until the operation settles; `keep_pending` are the entries of operations
        still in flight (settled ones are dropped here, sparing a write). Returns the head
        document's outbox as this write left it (for the relay, which then need not read it)."""
        fields: dict[str, Any] = {"head": head.to_doc() if head else None, "reverted": reverted}
        if changed_seq is not None:
            fields["changed_seq"], fields["changed_block"] = changed_seq, feed_block(changed_seq)
        if pending is not None:
            fields["_usage_pending"] = [*(keep_pending or []), pending]
        if expected_version_id is None:
            # a new file (the insert, one command), or one whose last version was deleted
            # permanently (its head document is still there with no head: the update)
            doc = {"_id": ref.key, "user_id": ref.user_id, "type": ref.file_type, "name": ref.name,
                   "category": ref.category, **fields}
            try:
                await self.heads.insert_one(new_document_with_events(doc, events))
                return list(events)
            except DuplicateKeyError:
                pass
            return await self._move_head({"_id": ref.key, "head": None}, fields, events)
        return await self._move_head({"_id": ref.key, "head.version_id": expected_version_id}, fields, events)

    async def _move_head(self, condition: dict[str, Any], fields: dict[str, Any], events: list[dict[str, Any]]
                         ) -> list[dict[str, Any]]:
        # the whole document: FerretDB 1.24's findAndModify takes no projection ("fields")
        after = await self.heads.find_one_and_update(condition, with_events({"$set": fields}, events),
                                                     return_document=ReturnDocument.AFTER)
        if after is None:
            raise HeadMoved()
        return list(after.get(OUTBOX_FIELD) or [])

    async def head_doc(self, key: str) -> dict[str, Any] | None:
        return await self.heads.find_one({"_id": key}, {"_outbox": 0})

    async def heads_with_pending(self, user_id: str, op_id: str) -> list[dict[str, Any]]:
        return await self.heads.find({"user_id": user_id, "_usage_pending.op": op_id}, {"_outbox": 0}).to_list(None)

    async def drop_pending(self, key: str, entries: list[dict[str, Any]]) -> None:
        if entries:
            await self.heads.update_one({"_id": key}, {"$pullAll": {"_usage_pending": entries}})

    async def live_heads(self, user_id: str, types: list[str] | None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"user_id": user_id, "head.deleted": False}
        if types:
            query["type"] = {"$in": types}
        return await self.heads.find(query, {"_outbox": 0}).sort([("type", 1), ("name", 1)]).to_list(None)

    async def listed_heads(self, user_id: str, types: list[str] | None) -> list[dict[str, Any]]:
        """The live head documents as the listing and the storage page show them, by type and
        name, without the fields the views do not read (NOT_LISTED), in batches of
        LISTING_BATCH (the local server's default batch made a listing of 10,000 files 40
        round trips). No sort on the server: the local server spends more CPU sorting them
        than Python does (docs/benchmarks.md, the listing); Python orders strings by code
        point, as MongoDB does by UTF-8 bytes."""
        query: dict[str, Any] = {"user_id": user_id, "head.deleted": False}
        if types:
            query["type"] = {"$in": types}
        heads = await self.heads.find(query, NOT_LISTED).batch_size(LISTING_BATCH).to_list(None)
        heads.sort(key=lambda h: (h["type"], h["name"]))
        return heads

    async def heads_changed_after(self, user_id: str, after: int, upto: int) -> list[dict[str, Any]]:
        """The head documents of the feed blocks of (after, upto] — every head whose last
        change is numbered there, and others of those blocks — as listed_heads reads them."""
        blocks = feed_blocks(after, upto)
        if not blocks:
            return []
        return await self.heads.find({"user_id": user_id, "changed_block": {"$in": blocks}},
                                     NOT_LISTED).batch_size(LISTING_BATCH).to_list(None)

    async def history(self, ref: FileRef, limit: int, before_ms: int | None = None) -> list[dict[str, Any]]:
        """One page of the file's versions, newest first: at most `limit`, all older than
        `before_ms` when given (a version's server time is unique within its file)."""
        query: dict[str, Any] = {"user_id": ref.user_id, "type": ref.file_type, "name": ref.name}
        if before_ms is not None:
            query["updated_ms"] = {"$lt": before_ms}
        return await self.versions.find(query).sort("updated_ms", -1).limit(limit).to_list(None)

    async def version_at(self, ref: FileRef, updated_ms: int) -> dict[str, Any] | None:
        return await self.versions.find_one({"user_id": ref.user_id, "type": ref.file_type, "name": ref.name,
                                             "updated_ms": updated_ms})

    async def history_for_removal(self, ref: FileRef) -> list[Version]:
        """What removing the head needs, newest first: the head, the version below it and,
        when that one is a delete marker, the newest live version below the marker."""
        top = await self.history(ref, 2)
        if len(top) == 2 and top[1].get("deleted"):
            live = await self.versions.find_one(
                {"user_id": ref.user_id, "type": ref.file_type, "name": ref.name, "deleted": False,
                 "updated_ms": {"$lt": top[1]["updated_ms"]}}, sort=[("updated_ms", -1)])
            if live is not None:
                top.append(live)
        return [Version.from_doc(v) for v in top]

    def stream_versions(self, user_id: str, types: list[str] | None, batch: int = 500
                        ) -> AsyncCursor[dict[str, Any]]:
        """Every version of the account (of some types), newest first, read in batches."""
        query: dict[str, Any] = {"user_id": user_id}
        if types:
            query["type"] = {"$in": types}
        return self.versions.find(query).sort([("updated_ms", DESCENDING), ("seq", DESCENDING)]).batch_size(batch)

    async def versions_by_ids(self, user_id: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The account's versions of these ids, by id, a few hundred a command (another
        account's version is not found)."""
        found: dict[str, dict[str, Any]] = {}
        for part in id_chunks(ids):
            async for version in self.versions.find({"_id": {"$in": list(part)}, "user_id": user_id}):
                found[version["_id"]] = version
        return found

    async def heads_by_refs(self, refs: list[FileRef]) -> dict[str, dict[str, Any]]:
        """The head documents of these files that exist, by key, a few hundred a command."""
        return {d["_id"]: d for d in await find_by_ids(self.heads, [ref.key for ref in refs], {"_outbox": 0})}

    def stream_live_heads(self, user_id: str, types: list[str] | None, batch: int = 500
                          ) -> AsyncCursor[dict[str, Any]]:
        """Every live head of the account (of some types), newest first, read in batches."""
        query: dict[str, Any] = {"user_id": user_id, "head.deleted": False}
        if types:
            query["type"] = {"$in": types}
        return self.heads.find(query, {"_outbox": 0}).sort(
            [("head.updated_ms", DESCENDING), ("head.seq", DESCENDING)]).batch_size(batch)

    async def versions_page(self, user_id: str, types: list[str] | None, after_seq: int, limit: int
                            ) -> list[dict[str, Any]]:
        """A page of the account's versions (of some types) in change order, after `after_seq`."""
        query: dict[str, Any] = {"user_id": user_id, "seq": {"$gt": after_seq}}
        if types:
            query["type"] = {"$in": types}
        return await self.versions.find(query).sort("seq", ASCENDING).limit(limit).to_list(None)

    async def count_versions(self, user_id: str) -> tuple[int, int]:
        """How many versions the account has and their bytes, read as a stream of sizes."""
        count = size = 0
        async for v in self.versions.find({"user_id": user_id}, {"size": 1}).batch_size(1000):
            count += 1
            size += max(0, v.get("size") or 0)
        return count, size

    async def remove_versions_of(self, user_id: str, op_id: str, version_ids: list[str]) -> list[str]:
        """Removes those of these versions that the operation wrote; returns their blob keys."""
        docs = [d for d in await find_by_ids(self.versions, version_ids, {"_id": 1, "op": 1, "blob_key": 1,
                                                                            "user_id": 1})
                if d.get("op") == op_id and d.get("user_id") == user_id]
        await self.delete_versions([d["_id"] for d in docs])
        return [d["blob_key"] for d in docs if d.get("blob_key")]

    async def versions_of_op(self, user_id: str, op_id: str) -> list[dict[str, Any]]:
        """The version documents one operation wrote (markers of a bulk delete: one per file)."""
        return await self.versions.find({"user_id": user_id, "op": op_id}, {"_id": 1}).to_list(None)

    async def live_heads_newest_first(self, user_id: str, batch: int = 500) -> AsyncIterator[dict[str, Any]]:
        """Every live head of the account, most recently changed first (then type, name), as
        a stream read in batches of `batch`: the order of the grace-end rule."""
        cursor = self.heads.find({"user_id": user_id, "head.deleted": False},
                                 {"_id": 1, "user_id": 1, "type": 1, "name": 1, "category": 1, "head": 1,
                                  "_usage_pending": 1}
                                 ).sort([("head.updated_ms", DESCENDING), ("type", ASCENDING), ("name", ASCENDING)]
                                        ).batch_size(batch)
        async for doc in cursor:
            yield doc

    async def delete_versions(self, version_ids: list[str]) -> None:
        if version_ids:
            await self.versions.delete_many({"_id": {"$in": version_ids}})

    async def delete_heads_still_at(self, pairs: list[tuple[str, str]], in_flight: frozenset[str] = frozenset()) -> int:
        """Deletes each head that still points at a version named for it ((head id, version
        id) pairs; a head may be named with several), a few hundred heads per command;
        returns how many went. One delete names the ids and the versions together: a version
        id belongs to one file only, so a head matches only its own pairs, and each command is
        atomic — a head an upload moved meanwhile stays. A head that carries the pending usage
        of an operation in `in_flight` (one that moved it and died before settling) keeps its
        document with no head: the reconciler settles that operation from the entry there, and
        without it would take the move for never made (docs/faults.md, finding 7).

        First each account's `heads_purged` grows: the only change of heads without a change
        number, which the listing kept by each process (listing.py) must learn of."""
        markers: dict[str, list[str]] = {}
        for head_id, version_id in pairs:
            markers.setdefault(head_id, []).append(version_id)
        users = sorted({head_id.split("/", 1)[0] for head_id in markers})  # a key is user/type/name
        if users:
            await self.accounts.update_many({"_id": {"$in": users}}, {"$inc": {"heads_purged": 1}})
            await self.drop_saved_listings(users)
        deleted = 0
        for part in id_chunks(sorted(markers)):
            at_marker = {"_id": {"$in": part}, "head.version_id": {"$in": [v for k in part for v in markers[k]]}}
            if in_flight:
                await self.heads.update_many({**at_marker, "_usage_pending.op": {"$in": sorted(in_flight)}},
                                             {"$set": {"head": None}})
            deleted += (await self.heads.delete_many(at_marker)).deleted_count
        return deleted

    async def delete_everything_of(self, user_id: str) -> None:
        await self.drop_saved_listings([user_id])  # it names files: it goes with them
        await delete_all(self.versions, {"user_id": user_id})
        await delete_all(self.heads, {"user_id": user_id})

    # ------------------------------------------------------------ saved listings (listing.py)
    async def saved_listing(self, user_id: str) -> dict[str, Any] | None:
        return await self.listings.find_one({"_id": user_id}) if self.listings is not None else None

    async def save_listing(self, user_id: str, fields: dict[str, Any]) -> None:
        """One document per account, every field written at once (a single-document write is
        atomic): whichever process saved last."""
        if self.listings is not None:
            await self.listings.update_one({"_id": user_id}, {"$set": {"user_id": user_id, **fields}}, upsert=True)

    async def account_marks(self, user_id: str) -> dict[str, Any] | None:
        """What says whether the account's data is being deleted: its reset and purge numbers
        and "delete all" in progress (None: no account document, erased)."""
        return await self.accounts.find_one({"_id": user_id}, {"reset_seq": 1, "heads_purged": 1, "frozen": 1})

    async def drop_saved_listings(self, user_ids: list[str]) -> None:
        if self.listings is not None and user_ids:
            await self.listings.delete_many({"_id": {"$in": user_ids}})

    # ------------------------------------------------------------ changes feed
    async def versions_after(self, user_id: str, after: int, upto: int) -> list[dict[str, Any]]:
        """The account's versions numbered in (after, upto], in change order, with the fields
        a feed entry shows: a window of the feed, read by its blocks in one round trip (at
        most upto - after versions: one batch), a wide one as up to FEED_READ_PARTS parts of
        whole blocks side by side (the local server decodes them on both cores while this
        process decodes the parts that came; a 1000-change page: p50 79–107 ms as two halves
        against 94–134 as one read; four parts were no faster: p95 63–68 ms against 52–61);
        ordered here, not by the server (see listed_heads)."""
        parts = max(1, min(FEED_READ_PARTS, (upto - after) // (2 * FEED_BLOCK)))
        cuts = [after, *((after + (upto - after) * k // parts + 1) // FEED_BLOCK * FEED_BLOCK - 1
                         for k in range(1, parts)), upto]
        reads = await asyncio.gather(*(self._versions_in(user_id, low, high)
                                       for low, high in itertools.pairwise(cuts) if high > low))
        versions = [version for read in reads for version in read]
        versions.sort(key=lambda v: v["seq"])
        return versions

    async def _versions_in(self, user_id: str, after: int, upto: int) -> list[dict[str, Any]]:
        return await self.versions.find({"user_id": user_id, "seq_block": {"$in": feed_blocks(after, upto)},
                                         "seq": {"$gt": after, "$lte": upto}},
                                        NOT_IN_FEED).batch_size(upto - after + 1).to_list(None)

    async def reverted_heads_after(self, user_id: str, after: int, upto: int) -> list[dict[str, Any]]:
        """Heads whose last change, numbered in (after, upto], was not a new version."""
        return await self.heads.find({"user_id": user_id, "changed_block": {"$in": feed_blocks(after, upto)},
                                      "reverted": True, "changed_seq": {"$gt": after, "$lte": upto}},
                                     {"_outbox": 0, "_usage_pending": 0}).sort("changed_seq", 1).to_list(None)

    async def add_feed_blocks(self, batch: int = 1000) -> int:
        """Gives documents written before feed blocks existed theirs (versions: seq_block,
        heads: changed_block); how many it changed. Once done it records so, and later calls
        cost one read."""
        if self.migrations is not None and await self.migrations.find_one({"_id": FEED_BLOCKS_DONE}):
            return 0
        changed = 0
        for collection, number, block in ((self.versions, "seq", "seq_block"),
                                          (self.heads, "changed_seq", "changed_block")):
            while True:
                docs = await collection.find({block: {"$exists": False}}, {number: 1}).limit(batch).to_list(None)
                if not docs:
                    break
                for doc in docs:
                    seq = doc.get(number)
                    await collection.update_one({"_id": doc["_id"], number: seq},
                                                {"$set": {block: feed_block(seq) if isinstance(seq, int) else None}})
                changed += len(docs)
        if self.migrations is not None:
            await self.migrations.update_one({"_id": FEED_BLOCKS_DONE}, {"$set": {"done": True}}, upsert=True)
        return changed
