"""The folder <-> type mapping: every type the server knows has exactly one folder, and paths
map both ways."""

from pathlib import Path

import pytest

from osmcloud_cli.layout import (
    FOLDER_TYPES,
    TYPE_FOLDERS,
    Key,
    LayoutError,
    key_of,
    local_path,
    resolve_type,
    scan,
    syncable_name,
)
from osmcloud_common.datatypes import TYPE_CATEGORIES


def test_every_server_type_has_its_own_folder():
    assert list(TYPE_FOLDERS) == list(TYPE_CATEGORIES)  # same types, the catalogue's order
    assert len(FOLDER_TYPES) == len(TYPE_FOLDERS)  # no two types share a folder
    assert all("/" not in folder and not folder.startswith(".") for folder in FOLDER_TYPES)


@pytest.mark.parametrize("path, key", [
    ("tracks/ride.gpx", Key("GPX", "ride.gpx")),
    ("tracks/2024/05/ride.gpx", Key("GPX", "2024/05/ride.gpx")),
    ("favorites/favorites.gpx", Key("FAVOURITES", "favorites.gpx")),
    ("osm_notes/notes.osc", Key("OSM_NOTES", "notes.osc")),
    ("avnotes/a.3gp", Key("MULTIMEDIA_NOTES", "a.3gp")),
    ("other/x.bin", Key("FILE", "x.bin")),
])
def test_paths_map_to_cloud_keys_and_back(path, key):
    assert key_of(path) == key
    assert key.path == path


@pytest.mark.parametrize("path", ["ride.gpx", "maps/x.obf", "tracks/.hidden.gpx", "tracks/../x", ".osmcloud/state.db"])
def test_paths_outside_type_folders_are_refused(path):
    with pytest.raises(LayoutError):
        key_of(path)


def test_types_are_given_by_wire_name_or_folder():
    assert resolve_type("GPX") == resolve_type("tracks") == resolve_type("tracks/") == resolve_type("gpx") == "GPX"
    with pytest.raises(LayoutError):
        resolve_type("maps")


def test_scan_finds_syncable_files_only(tmp_path: Path):
    for rel in ("tracks/a.gpx", "tracks/2024/b.gpx", "favorites/f.gpx", "tracks/.partial", "maps/world.obf",
                "top.txt", ".osmcloud/state.db", "tracks/.git/x"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    found = scan(tmp_path)
    assert set(found) == {Key("GPX", "a.gpx"), Key("GPX", "2024/b.gpx"), Key("FAVOURITES", "f.gpx")}
    assert found[Key("GPX", "a.gpx")].size == len("tracks/a.gpx")
    assert set(scan(tmp_path, {"FAVOURITES"})) == {Key("FAVOURITES", "f.gpx")}
    assert local_path(tmp_path, Key("GPX", "2024/b.gpx")) == tmp_path / "tracks" / "2024" / "b.gpx"


def test_cloud_names_that_cannot_be_local_files_are_skipped():
    assert syncable_name("2024/ride.gpx")
    for bad in ("../escape", "a/../../b", ".hidden", "a//b", "", "a\nb"):
        assert not syncable_name(bad), bad
