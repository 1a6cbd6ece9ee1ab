"""How files carries out the trash's decisions: `trash-item-purged` removes every version
of the file up to and including the purged delete marker, their blobs, and the file's head
if it still is that marker (a file uploaded again meanwhile keeps its newer versions).
Idempotent: a redelivered event finds nothing left to remove and emits nothing."""

import asyncio
import hashlib
from datetime import timedelta
from typing import Any

from osmcloud_common.events import Event, FileVersionsPruned, TrashItemPurged
from osmcloud_common.logging import StepTimer, get_logger
from osmcloud_common.mongo import delete_by_ids, id_chunks, insert_new
from osmcloud_common.outbox import new_document_with_events

from .ports import Blobs, Clock, EventPublisher
from .storage_rule import version_cost
from .store import FilesStore

log = get_logger(__name__)


def versions_to_purge(history: list[dict[str, Any]], tombstone_id: str) -> list[dict[str, Any]]:
    """Every version not newer than the purged delete marker (none if the marker is gone)."""
    marker = next((v for v in history if v["_id"] == tombstone_id), None)
    if marker is None:
        return []
    return [v for v in history if v["updated_ms"] <= marker["updated_ms"]]


def purge_plan(events: list[tuple[str, str, str, str]], histories: dict[tuple[str, str, str], list[dict[str, Any]]]
               ) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """What a batch of purges removes, per file (user, type, name): the versions each purged
    marker takes (`events` are (user, type, name, marker id)); several markers of one file
    take the union. Files whose markers are gone already (a redelivery) take nothing."""
    plan: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for user_id, file_type, name, marker_id in events:
        key = (user_id, file_type, name)
        for version in versions_to_purge(histories.get(key, []), marker_id):
            plan.setdefault(key, {})[version["_id"]] = version
    return {key: list(victims.values()) for key, victims in plan.items() if victims}


def pruned_payloads(victims: list[dict[str, Any]], chunk: int = 500) -> list[FileVersionsPruned]:
    """One file-versions-pruned per type and `chunk` versions (keeps events well under Kafka's 1 MB)."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for version in victims:
        by_type.setdefault(version["type"], []).append(version)
    return [FileVersionsPruned(file_type=file_type, version_ids=[v["_id"] for v in part],
                               freed_bytes=sum(max(0, v.get("size") or 0) for v in part))
            for file_type, versions in sorted(by_type.items())
            for part in (versions[i:i + chunk] for i in range(0, len(versions), chunk))]


HISTORY_FIELDS = {"_id": 1, "user_id": 1, "type": 1, "name": 1, "updated_ms": 1, "blob_key": 1, "size": 1}


class TrashReactions:
    """Files' side of trash's decisions, on the ports; the composition root (app.py) subscribes
    `items_purged` to trash-item-purged and runs `forget_relayed` in the background. `prunes`
    is the outbox collection of prune records (their events' carriers)."""

    def __init__(self, clock: Clock, events: EventPublisher, store: FilesStore, blobs: Blobs, prunes: Any) -> None:
        self.clock, self.events, self.store, self.blobs, self.prunes = clock, events, store, blobs, prunes

    async def items_purged(self, events: list[Event]) -> None:
        """A batch of trash-item-purged: the versions of every purged file up to its marker,
        their blobs, and heads that still are the marker — with a few bulk operations for the
        whole batch rather than several queries per file. Order, for crashes: the events
        first, then blobs and heads, versions, markers last (while a marker exists, a
        redelivered event finds the rest again)."""
        timer = StepTimer()
        wanted = []
        for event in events:
            p = event.payload()
            assert isinstance(p, TrashItemPurged)
            wanted.append((event.user_id, p.file_type, p.name, p.tombstone_version_id))
        histories = await self._histories({(u, t, n) for u, t, n, _ in wanted})
        timer.step("read")
        plan = purge_plan(wanted, histories)
        by_user: dict[str, list[dict[str, Any]]] = {}
        for (user_id, *_), victims in plan.items():
            by_user.setdefault(user_id, []).extend(victims)
        await self._record_pruned(by_user)
        timer.step("events")
        # a marker a dead delete moved to the head still carries that delete's usage change,
        # which the reconciler needs: such a head stays, with no version (delete_heads_still_at)
        in_flight = await self.store.ledger.operations_of(sorted({u for u, *_ in wanted}))
        # blobs (the S3 server) and heads (the database) at once: both go before the versions
        await asyncio.gather(
            self.blobs.delete_many([v["blob_key"] for vs in plan.values() for v in vs if v.get("blob_key")]),
            self.store.delete_heads_still_at([(f"{u}/{t}/{n}", marker) for u, t, n, marker in wanted], in_flight))
        timer.step("blobs and heads")
        markers = {marker for *_, marker in wanted}
        victim_ids = [v["_id"] for vs in plan.values() for v in vs]
        await delete_by_ids(self.store.versions, [v for v in victim_ids if v not in markers])
        await delete_by_ids(self.store.versions, [v for v in victim_ids if v in markers])
        # a redelivered batch finds no versions left, so nothing is taken off twice
        for user_id, gone in sorted(by_user.items()):
            await self.store.ledger.add_stored(user_id, -sum(version_cost(v.get("size")) for v in gone))
        timer.step("versions")
        log.info("trashed files purged", files=len(plan), versions=len(victim_ids), events=len(events),
                 seconds=timer.seconds)

    async def _histories(self, files: set[tuple[str, str, str]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
        """The versions of these files (user, type, name): one query per user and type
        naming a few hundred files, answered from the (user_id, type, name) index."""
        names: dict[tuple[str, str], list[str]] = {}
        for user_id, file_type, name in sorted(files):
            names.setdefault((user_id, file_type), []).append(name)
        histories: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for (user_id, file_type), all_names in names.items():
            for part in id_chunks(all_names):
                async for version in self.store.versions.find(
                        {"user_id": user_id, "type": file_type, "name": {"$in": part}}, HISTORY_FIELDS):
                    histories.setdefault((user_id, file_type, version["name"]), []).append(version)
        return histories

    async def _record_pruned(self, by_user: dict[str, list[dict[str, Any]]]) -> None:
        """One record per user carrying its file-versions-pruned events, keyed by what it
        prunes: a redelivered batch finds it and adds nothing."""
        docs = []
        for user_id, victims in sorted(by_user.items()):
            ids = sorted(v["_id"] for v in victims)
            doc = {"_id": "purge:" + hashlib.sha256(" ".join(ids).encode()).hexdigest(), "user_id": user_id,
                   "versions": len(ids), "created_at": self.clock.now()}
            entries = [self.events.event(p, user_id) for p in pruned_payloads(victims)]
            docs.append(new_document_with_events(doc, entries))
        await insert_new(self.prunes, docs)  # those recorded by an earlier delivery are kept as they are
        for record in docs:
            self.events.prune_written(record["_id"])

    async def forget_relayed(self, keep: timedelta = timedelta(minutes=10)) -> None:
        """Prune records are only the carriers of their events; drop them once relayed."""
        while True:
            try:
                await self.prunes.delete_many({"_outbox_pending": {"$exists": False},
                                               "created_at": {"$lt": self.clock.now() - keep}})
            except Exception as exc:  # Mongo away: next time
                log.warning("could not drop relayed prune records", error=repr(exc))
            await asyncio.sleep(30)

