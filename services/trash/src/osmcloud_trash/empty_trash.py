"""OsmAnd's empty-trash as a use case, free of HTTP (osmand_compat.py answers it): each entry
judged by osmand_rules.py, and every qualifying item purged exactly like the native "delete
now" (claim, purge batch with `trash-item-purged`, item gone; files then removes every version
and blob of the file)."""

from typing import Any

from osmcloud_common.logging import get_logger

from .errors import FilesUnavailable
from .osmand_rules import EntryResult, FileState, TrashEntry, judge_without_item, newest_version, split_duplicates
from .ports import FilesPort, TrashStorePort
from .purge import Purger

log = get_logger(__name__)


class EmptyTrash:
    def __init__(self, store: TrashStorePort, purger: Purger, files: FilesPort) -> None:
        self.store, self.purger, self.files = store, purger, files

    async def answer(self, user_id: str, entries: list[TrashEntry]) -> list[EntryResult]:
        first, repeats = split_duplicates(entries)
        results = [EntryResult(e, "already_missing") for e in repeats]
        items = await self.store.items_of_files(user_id, sorted({e.name for e in first}))
        by_marker = {(i["type"], i["name"], i.get("tombstone_update_ms")): i for i in items}
        by_id = {i["_id"]: i for i in items}

        to_purge: list[tuple[TrashEntry, dict[str, Any]]] = []
        undecided: list[TrashEntry] = []
        for entry in first:
            item = by_marker.get((entry.type, entry.name, entry.updatetime))
            (to_purge.append((entry, item)) if item else undecided.append(entry))

        # no item with that updatetime: files says what the file's newest version is
        for entry in undecided:
            try:
                newest = newest_version(await self.files.history(user_id, entry.type, entry.name))
            except FilesUnavailable as exc:
                log.warning("files unreachable during empty-trash", error=str(exc))
                results.append(judge_without_item(entry, None, purged_already=False))
                continue
            if newest and newest.get("deleted") and newest["updatetime"] == entry.updatetime:
                item = by_id.get(newest["version_id"])  # an item written before items knew their updatetime
                if item is not None:
                    to_purge.append((entry, item))
                    continue
                purged = newest["version_id"] in await self.store.purged_in_a_batch([newest["version_id"]])
                results.append(judge_without_item(entry, FileState(newest), purged_already=purged))
            else:
                results.append(judge_without_item(entry, FileState(newest), purged_already=False))

        results += await self._purge(to_purge)
        return results

    async def _purge(self, to_purge: list[tuple[TrashEntry, dict[str, Any]]]) -> list[EntryResult]:
        """The same purge as the native "delete now", for all qualifying items at once."""
        if not to_purge:
            return []
        purged = set(await self.purger.purge([item for _, item in to_purge], "deleted"))
        results: list[EntryResult] = []
        for entry, item in to_purge:
            if item["_id"] in purged:
                results.append(EntryResult(entry, "deleted"))
                continue
            claim = await self.store.claim(item["_id"])
            if claim is not None and claim.get("action") == "restore":
                results.append(EntryResult(entry, "failed", "the file is being restored right now"))
            elif claim is not None or await self.store.purged_in_a_batch([item["_id"]]):
                results.append(EntryResult(entry, "already_missing"))  # another purge has it
            else:  # restored meanwhile: the file is live again
                results.append(EntryResult(entry, "skipped_not_trash", "the file was restored meanwhile"))
        return results
