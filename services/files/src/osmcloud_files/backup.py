"""What goes into a user's own zip (docs/backup-download.md), decided before its first byte
is sent: the backup (the newest version of every live file, or of chosen types) and a chosen
set of files (each the newest version, or a named one). export.py zips what this selects."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from .domain import FileRef, parse_file_ref
from .errors import ChosenFilesMissing, TooManyChosen
from .export import Member, member_name, newest_versions
from .store import FilesStore

MAX_CHOSEN = 1000  # files one download request may list


def backup_types(user_id: str, raw: str | None) -> list[str] | None:
    """The backup's `types` filter: comma-separated, empty parts ignored; None (every type)
    when it names none. UnknownType for a type the catalogue does not have."""
    types = list(dict.fromkeys(t for t in (raw or "").split(",") if t))
    return [parse_file_ref(user_id, t, "x").file_type for t in types] or None


async def backup_members(store: FilesStore, user_id: str, types: list[str] | None) -> AsyncIterator[Member]:
    """The newest version of every live file (of `types`), each under files/<type>/<name>."""
    async for version in newest_versions(store, user_id, types):
        yield member_name(version, False), version


@dataclass(frozen=True)
class Wanted:
    """One file a download asks for: its newest version (version_id None) or a named one."""

    ref: FileRef
    version_id: str | None

    def named(self) -> dict[str, str | None]:
        return {"type": self.ref.file_type, "name": self.ref.name, "version_id": self.version_id}


def wanted_files(user_id: str, entries: list[tuple[str, str, str | None]]) -> list[Wanted]:
    """The (type, name, version id or None) a download lists, checked, in order, each once
    (a repeated entry is the same member). TooManyChosen above MAX_CHOSEN; UnknownType or
    InvalidName for an entry that cannot name a file."""
    if len(entries) > MAX_CHOSEN:
        raise TooManyChosen(len(entries), MAX_CHOSEN)
    wanted = [Wanted(parse_file_ref(user_id, file_type, name), version_id or None)
              for file_type, name, version_id in entries]
    return list(dict.fromkeys(wanted))


async def chosen_members(store: FilesStore, user_id: str, wanted: list[Wanted]) -> list[Member]:
    """Each wanted file's version: the newest under files/<type>/<name>, a named one under
    versions/<type>/<name>/<updatetime>-<id> (so several versions of a file fit in one zip).
    ChosenFilesMissing names every one that is not there - a file in the trash or never
    stored, a version of another file or account, a delete marker - before anything is sent."""
    heads = await store.heads_by_refs([w.ref for w in wanted if w.version_id is None])
    head_ids = {key: doc["head"]["version_id"] for key, doc in heads.items()
                if doc.get("head") and not doc["head"].get("deleted")}
    ids = [w.version_id or head_ids.get(w.ref.key) for w in wanted]
    versions = await store.versions_by_ids(user_id, [i for i in dict.fromkeys(ids) if i])
    members: list[Member] = []
    missing: list[dict[str, str | None]] = []
    for want, version_id in zip(wanted, ids, strict=True):
        version = versions.get(version_id) if version_id else None
        if version is None or not _is_live_version_of(version, want.ref):
            missing.append(want.named())
        else:
            members.append((member_name(version, want.version_id is not None), version))
    if missing:
        raise ChosenFilesMissing(missing)
    return members


def _is_live_version_of(version: dict[str, Any], ref: FileRef) -> bool:
    return (version["user_id"], version["type"], version["name"]) == (ref.user_id, ref.file_type, ref.name) \
        and not version.get("deleted")
