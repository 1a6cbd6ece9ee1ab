"""The local folder: laid out like OsmAnd's data folder, one sub-folder per data type.

A cloud file (TYPE, name) lives at `<folder of TYPE>/<name>`; `name` may hold sub-folders
(`tracks/2024/ride.gpx` is (GPX, "2024/ride.gpx")). Where OsmAnd's data folder has a
directory for a type (tracks/, favorites/, avnotes/, rendering/, routing/, voice/, tiles/)
the same name is used; the other types get a folder named after them. Files outside these
folders, hidden files (a name starting with ".") and the client's own `.osmcloud/` are not
synced. docs/cli.md has the table; tests/test_layout.py keeps it equal to the server's
type list."""

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

# type (the wire name the server and OsmAnd use) -> folder, in the server's catalogue order
TYPE_FOLDERS: dict[str, str] = {
    # Settings
    "GLOBAL": "settings",
    "PROFILE": "profiles",
    "QUICK_ACTIONS": "quick_actions",
    "POI_UI_FILTERS": "poi_filters",
    "AVOID_ROADS": "avoid_roads",
    "MAP_SOURCES": "tiles",
    "ONLINE_ROUTING_ENGINES": "online_routing",
    # My Places
    "FAVOURITES": "favorites",
    "GPX": "tracks",
    "OSM_NOTES": "osm_notes",
    "OSM_EDITS": "osm_edits",
    "ACTIVE_MARKERS": "markers",
    "HISTORY_MARKERS": "history_markers",
    "SEARCH_HISTORY": "search_history",
    "NAVIGATION_HISTORY": "navigation_history",
    "ITINERARY_GROUPS": "itinerary",
    "MULTIMEDIA_NOTES": "avnotes",
    # Resources (maps themselves are never stored: DOWNLOADS is the list of a device's maps)
    "DOWNLOADS": "downloads",
    "CUSTOM_RENDER_STYLE": "rendering",
    "CUSTOM_ROUTING": "routing",
    "TTS_VOICE": "voice_tts",
    "VOICE": "voice",
    "FILE": "other",
}
FOLDER_TYPES: dict[str, str] = {folder: file_type for file_type, folder in TYPE_FOLDERS.items()}

STATE_DIR = ".osmcloud"  # the client's own state inside the synced folder: never synced
PARTIAL_PREFIX = ".osmcloud-partial-"  # downloads in progress (hidden, so never synced)


class LayoutError(ValueError):
    """A path that does not name a syncable file of the folder."""


@dataclass(frozen=True, order=True)
class Key:
    """A file's identity in the cloud: (type, name)."""
    type: str
    name: str

    @property
    def path(self) -> str:
        """Its place in the folder, relative, with '/' separators."""
        return f"{TYPE_FOLDERS[self.type]}/{self.name}"


def key_of(relative: str) -> Key:
    """The cloud identity of a folder-relative path ('tracks/2024/x.gpx' -> GPX, '2024/x.gpx')."""
    parts = PurePosixPath(relative.replace(os.sep, "/")).parts
    if len(parts) < 2:
        raise LayoutError(f"'{relative}' is not inside a data-type folder (such as tracks/ or favorites/)")
    file_type = FOLDER_TYPES.get(parts[0])
    if file_type is None:
        raise LayoutError(f"'{parts[0]}/' is not a data-type folder; known folders: {', '.join(sorted(FOLDER_TYPES))}")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts[1:]):
        raise LayoutError(f"'{relative}' is hidden or not a plain path; hidden files are not synced")
    return Key(file_type, "/".join(parts[1:]))


def syncable_name(name: str) -> bool:
    """Whether a cloud name can be a file of the folder (no hidden parts, no '..', no
    control characters): other names are listed as skipped, never written."""
    parts = name.split("/")
    return bool(name) and not any(p in ("", ".", "..") or p.startswith(".") for p in parts) and \
        not any(ord(c) < 32 for c in name)


def resolve_type(word: str) -> str:
    """A type given by a person: its wire name (GPX) or its folder (tracks), any case."""
    upper = word.strip().rstrip("/").upper()
    if upper in TYPE_FOLDERS:
        return upper
    folder = word.strip().rstrip("/").lower()
    if folder in FOLDER_TYPES:
        return FOLDER_TYPES[folder]
    raise LayoutError(f"unknown type '{word}'; use a type ({', '.join(TYPE_FOLDERS)}) or its folder "
                      f"({', '.join(TYPE_FOLDERS.values())})")


@dataclass(frozen=True)
class LocalStat:
    size: int
    mtime_ns: int


def scan(root: Path, types: set[str] | None = None) -> dict[Key, LocalStat]:
    """Every syncable file of the folder (of `types`, when given) with its size and mtime."""
    found: dict[Key, LocalStat] = {}
    for file_type, folder in TYPE_FOLDERS.items():
        if types is not None and file_type not in types:
            continue
        base = root / folder
        if not base.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel_dir = Path(dirpath).relative_to(base).as_posix()
            for filename in filenames:
                if filename.startswith("."):
                    continue
                full = Path(dirpath) / filename
                try:
                    st = full.stat()
                except FileNotFoundError:
                    continue
                if not full.is_file():
                    continue
                name = filename if rel_dir == "." else f"{rel_dir}/{filename}"
                found[Key(file_type, name)] = LocalStat(st.st_size, st.st_mtime_ns)
    return found


def local_path(root: Path, key: Key) -> Path:
    return root / TYPE_FOLDERS[key.type] / Path(*key.name.split("/"))


def stat_of(path: Path) -> LocalStat | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return LocalStat(st.st_size, st.st_mtime_ns) if path.is_file() else None
