"""OsmAnd's `empty-trash` rules, free of I/O: which entries a request may carry, and how each
entry is answered.

The app names a trash entry by (type, name, updatetime), updatetime being the server time
in ms of the file's delete marker (the tombstone). An entry qualifies when that marker is
still the file's newest version; then every version of the file goes, exactly as our own
"delete now" of that trash item does. Per entry the answer is one of:
  deleted           the trash item of that marker was purged by this call;
  already_missing   nothing of it is left to delete: no such file at all, the marker was
                    purged already (its versions may still be on their way out), or the
                    same entry came earlier in the same request;
  skipped_not_trash the file exists but its newest version is not that marker (it is live
                    again, or was deleted again later under another updatetime);
  failed            it could not be decided or done now (being restored, the delete still
                    reaching the trash, files unreachable): nothing was deleted, retry."""

from dataclasses import dataclass
from typing import Any, Literal

from .errors import MalformedEntries

MAX_ENTRIES = 50  # the app sends at most 50 per call (EmptyTrashCommand.CHUNK_SIZE)
MAX_FIELD = 1024
MAX_UPDATETIME = 2**63 - 1  # a Java long, as the app keeps it

Status = Literal["deleted", "already_missing", "skipped_not_trash", "failed"]


@dataclass(frozen=True)
class TrashEntry:
    name: str
    type: str
    updatetime: int


@dataclass(frozen=True)
class EntryResult:
    entry: TrashEntry
    status: Status
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.entry.name, "type": self.entry.type,
                                "updatetime": self.entry.updatetime, "status": self.status}
        if self.message:
            body["message"] = self.message
        return body


def _entry(index: int, raw: Any) -> TrashEntry:
    where = f"entry {index}"
    if not isinstance(raw, dict):
        raise MalformedEntries(f"{where} must be an object {{\"name\",\"type\",\"updatetime\"}}")
    name, file_type, updatetime = raw.get("name"), raw.get("type"), raw.get("updatetime")
    if not isinstance(name, str) or not name or len(name) > MAX_FIELD:
        raise MalformedEntries(f"{where}: 'name' must be a non-empty string")
    if not isinstance(file_type, str) or not file_type or len(file_type) > MAX_FIELD:
        raise MalformedEntries(f"{where}: 'type' must be a non-empty string")
    # JSON numbers only, whole milliseconds (1700000000000.0 is one, as JSON Schema's integer has
    # it), within a 64-bit long like the app's: a bool is an int in Python but not a time
    if isinstance(updatetime, float) and updatetime.is_integer():
        updatetime = int(updatetime)
    if isinstance(updatetime, bool) or not isinstance(updatetime, int) or not 0 <= updatetime <= MAX_UPDATETIME:
        raise MalformedEntries(f"{where}: 'updatetime' must be the delete marker's "
                               "server time in milliseconds (an integer from 0 to 2^63-1)")
    return TrashEntry(name=name, type=file_type, updatetime=updatetime)


def parse_entries(body: Any) -> list[TrashEntry]:
    """The request's entries, or one MalformedEntries for the whole request (nothing is deleted)."""
    if not isinstance(body, list):
        raise MalformedEntries("the body must be a JSON array of {\"name\",\"type\",\"updatetime\"}")
    if len(body) > MAX_ENTRIES:
        raise MalformedEntries(f"at most {MAX_ENTRIES} entries per empty-trash call, got "
                               f"{len(body)}; nothing was deleted, send them in chunks of {MAX_ENTRIES}")
    return [_entry(i, raw) for i, raw in enumerate(body)]


def newest_version(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest of files' versions (history entries carry `updatetime` and `deleted`)."""
    return max(history, key=lambda v: v["updatetime"], default=None)


@dataclass(frozen=True)
class FileState:
    """What files says about the entry's file: its newest version, None when it has none."""
    newest: dict[str, Any] | None


def judge_without_item(entry: TrashEntry, state: FileState | None, *, purged_already: bool) -> EntryResult:
    """The answer for an entry whose marker has no trash item (none with that updatetime).
    `state` None: files could not be asked."""
    if purged_already:
        return EntryResult(entry, "already_missing")
    if state is None:
        return EntryResult(entry, "failed", "the files service did not answer; nothing was deleted, try again")
    newest = state.newest
    if newest is None:
        return EntryResult(entry, "already_missing")
    if newest.get("deleted") and newest["updatetime"] == entry.updatetime:
        return EntryResult(entry, "failed", "the file was deleted moments ago and is still on its way to the "
                                            "trash; try again in a moment")
    if newest.get("deleted"):
        return EntryResult(entry, "skipped_not_trash",
                           f"the file was deleted again later (updatetime {newest['updatetime']})")
    return EntryResult(entry, "skipped_not_trash", "the file is no longer in the trash: a newer version exists")


def split_duplicates(entries: list[TrashEntry]) -> tuple[list[TrashEntry], list[TrashEntry]]:
    """(first occurrences, repeats): a repeat of an entry in the same request is answered
    already_missing, since the first one deletes it."""
    seen: set[TrashEntry] = set()
    first: list[TrashEntry] = []
    repeats: list[TrashEntry] = []
    for entry in entries:
        (repeats if entry in seen else first).append(entry)
        seen.add(entry)
    return first, repeats
