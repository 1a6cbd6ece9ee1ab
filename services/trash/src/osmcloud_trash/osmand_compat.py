"""OsmAnd's `POST /userdata/empty-trash?deviceid&accessToken`, answered on the trash's own
items and purge path: a qualifying entry is purged exactly like our native "delete now"
(claim, purge batch with `trash-item-purged`, item gone; files then removes every version
and blob of the file). Rules per entry: osmand_rules.py.

Authenticated by deviceid + accessToken, asked of auth on every call (nginx cannot read
the credentials of a compat call; osmcloud_common.osmand)."""

import json

from aiohttp import web

from osmcloud_common.logging import get_logger
from osmcloud_common.osmand import MALFORMED_REQUEST, CompatAuthenticator, OsmandError

from .files_client import FilesClient, FilesUnavailable
from .osmand_rules import EntryResult, FileState, TrashEntry, judge_without_item, newest_version, parse_entries, \
    split_duplicates
from .purge import Purger
from .store import TrashStore

log = get_logger(__name__)


class OsmandTrash:
    def __init__(self, store: TrashStore, purger: Purger, files: FilesClient, auth: CompatAuthenticator) -> None:
        self.store, self.purger, self.files, self.auth = store, purger, files, auth

    def register(self, app: web.Application) -> None:
        app.router.add_post("/userdata/empty-trash", self.empty_trash)

    async def empty_trash(self, request: web.Request) -> web.Response:
        who = await self.auth.authenticate(request)
        try:
            body = await request.json(loads=_strict_loads)
        except Exception:
            raise OsmandError(MALFORMED_REQUEST, "the body must be a JSON array of {\"name\",\"type\",\"updatetime\"}")
        entries = parse_entries(body)
        results = await self.answer(who.user_id, entries)
        by_entry = {id(r.entry): r for r in results}
        log.info("osmand empty-trash", user_id=who.user_id, entries=len(entries),
                 deleted=sum(r.status == "deleted" for r in results))
        return web.json_response({"status": "ok", "results": [by_entry[id(e)].to_json() for e in entries]})

    async def answer(self, user_id: str, entries: list[TrashEntry]) -> list[EntryResult]:
        first, repeats = split_duplicates(entries)
        results = [EntryResult(e, "already_missing") for e in repeats]
        items = await self.store.items_of_files(user_id, sorted({e.name for e in first}))
        by_marker = {(i["type"], i["name"], i.get("tombstone_update_ms")): i for i in items}
        by_id = {i["_id"]: i for i in items}

        to_purge: list[tuple[TrashEntry, dict]] = []
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

    async def _purge(self, to_purge: list[tuple[TrashEntry, dict]]) -> list[EntryResult]:
        """The same purge as the native "delete now", for all qualifying items at once."""
        if not to_purge:
            return []
        purged = set(await self.purger.purge([item for _, item in to_purge], "deleted"))
        results = []
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


def _strict_loads(text: str):
    """json.loads that refuses NaN and Infinity (not JSON, and not a time)."""
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)
