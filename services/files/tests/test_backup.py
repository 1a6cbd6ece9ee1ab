"""A user's own zip on fakes (files_fakes.py: the real store over in-memory collections): what
the backup and a chosen download select, what they refuse before the first byte, and the
routes' answers (aiohttp's test server with files' one error mapping)."""

import hashlib
import io
import json
import zipfile

import pytest
from aiohttp.test_utils import TestClient, TestServer
from files_fakes import PRO, World, body

from osmcloud_common.domain_errors import map_domain_errors
from osmcloud_common.http import create_app
from osmcloud_files.backup import MAX_CHOSEN, backup_members, backup_types, chosen_members, wanted_files
from osmcloud_files.backup_routes import MAX_BODY_BYTES, BackupRoutes
from osmcloud_files.domain import parse_file_ref
from osmcloud_files.errors import ChosenFilesMissing, InvalidName, TooManyChosen, UnknownType
from osmcloud_files.export import stream_zip
from osmcloud_files.native_errors import api_error
from osmcloud_files.uploads import UploadRequest
from osmcloud_files.zip_slots import ZipSlots

BIG_PRO = {**PRO, "quota_bytes": 10_000_000}


async def put(world: World, user: str, file_type: str, name: str, data: bytes, base: str | None = None) -> str:
    head, _ = await world.process().uploader.upload(UploadRequest(
        parse_file_ref(user, file_type, name), "dev", body(data), len(data), base, overwrite=base is None))
    return head.version_id


async def accounts() -> tuple[World, dict[str, str]]:
    """u: a track in two versions, favourites, a settings file and a trashed note; v (another
    account): a track of the same name."""
    world = World()
    for user in ("u", "v"):
        await world.give_plan(user, BIG_PRO)
    ids = {"track1": await put(world, "u", "GPX", "tracks/a.gpx", b"<gpx>one</gpx>")}
    ids["track2"] = await put(world, "u", "GPX", "tracks/a.gpx", b"<gpx>two</gpx>", base=ids["track1"])
    ids["favs"] = await put(world, "u", "FAVOURITES", "favourites.gpx", b"<gpx>favs</gpx>")
    ids["settings"] = await put(world, "u", "GLOBAL", "settings.json", b"{}")
    ids["note"] = await put(world, "u", "OSM_NOTES", "note.json", b"note")
    ids["marker"] = (await world.process().ops.delete_file(parse_file_ref("u", "OSM_NOTES", "note.json"), None, "dev",
                                                           None)).version_id
    ids["other"] = await put(world, "v", "GPX", "tracks/a.gpx", b"<gpx>v's</gpx>")
    return world, ids


async def zipped(world: World, members) -> zipfile.ZipFile:
    sent: list[bytes] = []

    async def send(data: bytes) -> None:
        sent.append(data)
    await stream_zip(world.blobs, members, {"user_id": "u"}, send)
    archive = zipfile.ZipFile(io.BytesIO(b"".join(sent)))
    assert archive.testzip() is None
    return archive


def contents(archive: zipfile.ZipFile) -> dict[str, bytes]:
    return {n: archive.read(n) for n in archive.namelist() if n != "manifest.json"}


# ---------------------------------------------------------------- the backup
async def test_the_backup_holds_the_newest_version_of_every_live_file_and_nothing_else():
    world, ids = await accounts()
    archive = await zipped(world, backup_members(world.process().store, "u", None))
    assert contents(archive) == {"files/GPX/tracks/a.gpx": b"<gpx>two</gpx>",
                                 "files/FAVOURITES/favourites.gpx": b"<gpx>favs</gpx>",
                                 "files/GLOBAL/settings.json": b"{}"}
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["user_id"] == "u"
    by_path = {f["path"]: f for f in manifest["files"]}
    assert by_path["files/GPX/tracks/a.gpx"]["version_id"] == ids["track2"]
    assert by_path["files/GPX/tracks/a.gpx"]["checksum"] == "sha256:" + hashlib.sha256(b"<gpx>two</gpx>").hexdigest()
    assert set(by_path) == set(contents(archive))


async def test_the_backup_of_chosen_types_and_of_nothing():
    world, _ = await accounts()
    store = world.process().store
    types = backup_types("u", ",GPX,,FAVOURITES,GPX")
    assert types == ["GPX", "FAVOURITES"]
    assert set(contents(await zipped(world, backup_members(store, "u", types)))) == {
        "files/GPX/tracks/a.gpx", "files/FAVOURITES/favourites.gpx"}
    # a type with no live file (the note is in the trash), or an account with none: just the manifest
    for user, only in (("u", ["OSM_NOTES"]), ("nobody", None)):
        archive = await zipped(world, backup_members(store, user, only))
        assert archive.namelist() == ["manifest.json"]
        assert json.loads(archive.read("manifest.json"))["files"] == []


def test_types_of_the_backup():
    assert backup_types("u", None) is None and backup_types("u", "") is None and backup_types("u", ",,") is None
    with pytest.raises(UnknownType, match="unknown file type 'gpx'"):
        backup_types("u", "GPX,gpx")


# ---------------------------------------------------------------- a chosen set
async def test_chosen_files_newest_and_named_versions_each_once():
    world, ids = await accounts()
    wanted = wanted_files("u", [("GPX", "tracks/a.gpx", None), ("GPX", "tracks/a.gpx", ids["track1"]),
                                ("GLOBAL", "settings.json", None), ("GPX", "tracks/a.gpx", None),
                                ("GPX", "tracks/a.gpx", "")])  # "" is no version: the newest again
    assert len(wanted) == 3
    members = await chosen_members(world.process().store, "u", wanted)
    archive = await zipped(world, _iterate(members))
    assert contents(archive) == {
        "files/GPX/tracks/a.gpx": b"<gpx>two</gpx>",
        f"versions/GPX/tracks/a.gpx/{members[1][1]['updated_ms']}-{ids['track1']}": b"<gpx>one</gpx>",
        "files/GLOBAL/settings.json": b"{}"}
    assert archive.namelist()[:3] == [path for path, _ in members]  # in the order asked


async def test_every_missing_file_is_named_before_anything_is_sent():
    world, ids = await accounts()
    asked = [("GPX", "tracks/a.gpx", None),                       # there
             ("OSM_NOTES", "note.json", None),                    # in the trash
             ("OSM_NOTES", "note.json", ids["marker"]),           # its delete marker
             ("FAVOURITES", "never.gpx", None),                   # never stored
             ("GPX", "tracks/a.gpx", ids["favs"]),                # a version of another file
             ("GPX", "tracks/a.gpx", ids["other"]),               # another account's version, same name
             ("GPX", "tracks/a.gpx", "no-such-version")]
    with pytest.raises(ChosenFilesMissing) as refused:
        await chosen_members(world.process().store, "u", wanted_files("u", asked))
    assert refused.value.details["missing"] == [{"type": t, "name": n, "version_id": v} for t, n, v in asked[1:]]
    assert "6 of the files" in refused.value.message and "FAVOURITES/never.gpx" in refused.value.message
    # another account asking for u's versions by id finds none of them
    with pytest.raises(ChosenFilesMissing):
        await chosen_members(world.process().store, "v", wanted_files("v", [("GPX", "tracks/a.gpx", ids["track1"])]))


def test_what_a_chosen_set_may_list():
    assert len(wanted_files("u", [("GPX", f"{i}.gpx", None) for i in range(MAX_CHOSEN)])) == MAX_CHOSEN
    with pytest.raises(TooManyChosen, match=f"at most {MAX_CHOSEN} files and this one lists {MAX_CHOSEN + 1}"):
        wanted_files("u", [("GPX", f"{i}.gpx", None) for i in range(MAX_CHOSEN + 1)])
    with pytest.raises(UnknownType):
        wanted_files("u", [("TRACKS", "a.gpx", None)])
    with pytest.raises(InvalidName):
        wanted_files("u", [("GPX", "../a.gpx", None)])


async def _iterate(members):
    for member in members:
        yield member


# ---------------------------------------------------------------- the routes
@pytest.fixture
async def client():
    world, ids = await accounts()
    app = create_app("files")
    map_domain_errors(app, api_error)
    BackupRoutes(world.process().store, world.blobs, world.clock, ZipSlots(4, 2)).register(app)
    client = TestClient(TestServer(app), headers={"X-User-Id": "u"})
    await client.start_server()
    client.ids = ids
    yield client
    await client.close()


async def test_the_backup_route_streams_an_attachment(client):
    answer = await client.get("/api/files/backup", params={"types": "GPX"})
    assert answer.status == 200 and answer.headers["Content-Type"] == "application/zip"
    assert answer.headers["Content-Disposition"] == 'attachment; filename="osmcloud-backup-2026-01-01.zip"'
    archive = zipfile.ZipFile(io.BytesIO(await answer.read()))
    assert archive.namelist() == ["files/GPX/tracks/a.gpx", "manifest.json"]
    assert json.loads(archive.read("manifest.json"))["types"] == ["GPX"]
    refused = await client.get("/api/files/backup", params={"types": "GPX,NOPE"})
    assert refused.status == 400 and (await refused.json())["error"]["code"] == "unknown_type"
    head = await client.head("/api/files/backup")
    assert head.status == 200 and await head.read() == b""


async def test_the_download_route_refuses_before_streaming(client):
    ok = await client.post("/api/files/download", json={"files": [{"type": "GLOBAL", "name": "settings.json"}]})
    assert ok.status == 200, await ok.text()
    assert ok.headers["Content-Disposition"] == 'attachment; filename="osmcloud-files-2026-01-01.zip"'
    assert contents(zipfile.ZipFile(io.BytesIO(await ok.read()))) == {"files/GLOBAL/settings.json": b"{}"}

    async def error(status: int, **kwargs) -> dict:
        answer = await client.post("/api/files/download", **kwargs)
        assert answer.status == status, await answer.text()
        assert answer.headers["Content-Type"].startswith("application/json")
        return (await answer.json())["error"]
    missing = await error(404, json={"files": [{"type": "GPX", "name": "nope.gpx"}]})
    assert missing["code"] == "files_not_found" and "GPX/nope.gpx" in missing["message"]
    too_many = await error(400, json={"files": [{"type": "GPX", "name": "a"}] * (MAX_CHOSEN + 1)})
    assert too_many["code"] == "too_many_files"
    too_big = await error(413, data=b'{"files": [' + b" " * MAX_BODY_BYTES + b"]}")
    assert too_big["code"] == "request_too_large"
    assert (await error(400, data=b"not json"))["message"].startswith("the request body must be JSON")
    for wrong in ({}, {"files": "x"}, {"files": [{"type": "GPX"}]}, {"files": [{"type": "GPX", "name": 1}]},
                  {"files": [{"type": "GPX", "name": "a", "version_id": ""}]},
                  {"files": [{"type": "GPX", "name": "a", "extra": 1}]}, {"files": [], "more": 1}):
        assert (await error(400, json=wrong))["code"] == "bad_request", wrong
    empty = await client.post("/api/files/download", json={"files": []})
    assert empty.status == 200 and zipfile.ZipFile(io.BytesIO(await empty.read())).namelist() == ["manifest.json"]
