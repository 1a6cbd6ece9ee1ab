"""A user's own files as one zip, through the gateway (docs/backup-download.md): the backup
(`GET /api/files/backup`, every live file's newest version or chosen types) and a chosen set
(`POST /api/files/download`). Each member's bytes and SHA-256 are what was uploaded, the
manifest lists them, refusals come before the first byte, each call sees the writes just
answered; and the files process's memory stays flat while ~100 MiB stream."""

import asyncio
import hashlib
import io
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path

from osmcloud_common.events import Entitlement
from osmcloud_localstack.rss import RssSampler

MIB = 1024 * 1024
PRO = Entitlement(plan="pro", quota_bytes=3000 * MIB, allowed_types=None)


def unzipped(body: bytes) -> tuple[dict[str, bytes], dict]:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None
        members = {n: archive.read(n) for n in archive.namelist() if n != "manifest.json"}
        return members, json.loads(archive.read("manifest.json"))


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def test_the_backup_and_a_chosen_set_hold_exactly_what_was_uploaded(files):
    me, session = await files.user_with(PRO)
    other, _ = await files.user_with(PRO)
    stored = {("GPX", "tracks/2024/ride.gpx"): os.urandom(3000), ("GPX", "tracks/walk.gpx"): b"<gpx>walk</gpx>",
              ("FAVOURITES", "favourites.gpx"): os.urandom(700), ("GLOBAL", "settings.json"): b"{}",
              ("OSM_NOTES", "note.json"): b"note", ("FILE", "empty.bin"): b""}
    for (file_type, name), data in stored.items():
        assert (await me.call("PUT", f"/api/files/{file_type}/{name}", data=data)).status == 201
    # a second version of the walk, and the note deleted (in the trash): the zip has neither old
    first_walk = (await me.call("GET", "/api/files/history/GPX/tracks/walk.gpx")).body["versions"][0]
    stored["GPX", "tracks/walk.gpx"] = b"<gpx>walk, longer</gpx>"
    reply = await me.call("PUT", "/api/files/GPX/tracks/walk.gpx", data=stored["GPX", "tracks/walk.gpx"],
                          params={"base_version": first_walk["version_id"]})
    assert reply.status == 201, reply
    assert (await me.call("DELETE", "/api/files/OSM_NOTES/note.json")).status == 200
    del stored["OSM_NOTES", "note.json"]
    assert (await other.call("PUT", "/api/files/GPX/tracks/walk.gpx", data=b"<gpx>other's</gpx>")).status == 201

    # everything: at once after the writes, each member's bytes, the manifest's checksums
    backup = await me.call("GET", "/api/files/backup")
    assert backup.status == 200 and backup.headers["Content-Type"] == "application/zip"
    assert backup.headers["Content-Disposition"].startswith('attachment; filename="osmcloud-backup-')
    members, manifest = unzipped(backup.body)
    assert members == {f"files/{t}/{n}": data for (t, n), data in stored.items()}
    assert manifest["user_id"] == session["user_id"] and manifest["types"] is None
    assert {f["path"]: (f["checksum"], f["size"]) for f in manifest["files"]} == {
        f"files/{t}/{n}": (sha(data), len(data)) for (t, n), data in stored.items()}

    # chosen types; a type with nothing live; an unknown type
    only = await me.call("GET", "/api/files/backup", params={"types": "GPX,FAVOURITES"})
    assert set(unzipped(only.body)[0]) == {"files/GPX/tracks/2024/ride.gpx", "files/GPX/tracks/walk.gpx",
                                           "files/FAVOURITES/favourites.gpx"}
    nothing = await me.call("GET", "/api/files/backup", params={"types": "OSM_NOTES"})
    assert nothing.status == 200 and unzipped(nothing.body) == ({}, {**manifest, "types": ["OSM_NOTES"], "files": []})
    wrong = await me.call("GET", "/api/files/backup", params={"types": "GPX,TRACKS"})
    assert wrong.status == 400 and wrong.error_code() == "unknown_type" and "'TRACKS'" in wrong.body["error"]["message"]

    # a chosen set: a newest version and an old one
    chosen = await me.call("POST", "/api/files/download", json={"files": [
        {"type": "GPX", "name": "tracks/walk.gpx"}, {"type": "GPX", "name": "tracks/walk.gpx",
                                                     "version_id": first_walk["version_id"]},
        {"type": "FAVOURITES", "name": "favourites.gpx"}]})
    assert chosen.status == 200 and 'filename="osmcloud-files-' in chosen.headers["Content-Disposition"]
    members, manifest = unzipped(chosen.body)
    old = f"versions/GPX/tracks/walk.gpx/{first_walk['updatetime']}-{first_walk['version_id']}"
    assert members == {"files/GPX/tracks/walk.gpx": stored["GPX", "tracks/walk.gpx"], old: b"<gpx>walk</gpx>",
                       "files/FAVOURITES/favourites.gpx": stored["FAVOURITES", "favourites.gpx"]}
    assert [f["path"] for f in manifest["files"]] == ["files/GPX/tracks/walk.gpx", old,
                                                      "files/FAVOURITES/favourites.gpx"]

    # what is not there is named before anything is sent; too many entries are refused
    missing = await me.call("POST", "/api/files/download", json={"files": [
        {"type": "GPX", "name": "tracks/walk.gpx"}, {"type": "OSM_NOTES", "name": "note.json"},
        {"type": "GPX", "name": "nowhere.gpx"}]})
    assert missing.status == 404 and missing.error_code() == "files_not_found", missing
    assert [(m["type"], m["name"]) for m in missing.body["error"]["missing"]] == [
        ("OSM_NOTES", "note.json"), ("GPX", "nowhere.gpx")]
    too_many = await me.call("POST", "/api/files/download",
                             json={"files": [{"type": "GPX", "name": f"{i}.gpx"} for i in range(1001)]})
    assert too_many.status == 400 and too_many.error_code() == "too_many_files", too_many

    # the other account's backup holds its own file only
    assert unzipped((await other.call("GET", "/api/files/backup")).body)[0] == {
        "files/GPX/tracks/walk.gpx": b"<gpx>other's</gpx>"}


async def _zip_to_file(me, method: str, path: str, target: Path, **kwargs) -> tuple[float, int]:
    """A zip answer streamed into `target`: (seconds, bytes)."""
    written = 0
    started = time.perf_counter()
    async with me.session.request(method, me.base + path, headers={"Authorization": f"Bearer {me.token}"},
                                  **kwargs) as response:
        assert response.status == 200, await response.read()
        with target.open("wb") as sink:
            async for chunk in response.content.iter_chunked(MIB):
                sink.write(chunk)
                written += len(chunk)
    return time.perf_counter() - started, written


def _check(target: Path, sums: dict[str, str], prefix: str) -> None:
    with zipfile.ZipFile(target) as archive:
        got = {}
        for name in archive.namelist():
            if name != "manifest.json":
                with archive.open(name) as member:  # checks the CRC while reading
                    digest = hashlib.sha256()
                    while piece := member.read(MIB):
                        digest.update(piece)
                    got[name] = digest.hexdigest()
        manifest = json.loads(archive.read("manifest.json"))
    assert got == {prefix + name: digest for name, digest in sums.items()}
    assert {f["path"]: f["checksum"] for f in manifest["files"]} == {
        prefix + name: f"sha256:{digest}" for name, digest in sums.items()}


async def test_a_96_mib_backup_and_download_stream_with_flat_memory(files):
    me, _ = await files.user_with(PRO)
    sums: dict[str, str] = {}
    for i in range(24):  # 24 files of 4 MiB of random bytes (nothing compresses)
        body = os.urandom(4 * MIB)
        sums[f"big/{i:02d}.bin"] = hashlib.sha256(body).hexdigest()
        assert (await me.call("PUT", f"/api/files/FILE/big/{i:02d}.bin", data=body)).status == 201
    del body
    pid = files.files_pid()
    # the reference for the speed: the same files one after the other, as plain downloads
    started, plain = time.perf_counter(), 0
    for name, digest in sums.items():
        reply = await me.call("GET", f"/api/files/FILE/{name}")
        assert reply.status == 200 and hashlib.sha256(reply.body).hexdigest() == digest
        plain += len(reply.body)
    plain_speed = plain / MIB / (time.perf_counter() - started)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "backup.zip"
        with RssSampler(pid, every=0.02) as backup:
            seconds, size = await _zip_to_file(me, "GET", "/api/files/backup", target)
        _check(target, sums, "files/FILE/")
        print(f"\n  plain downloads, one after the other: {plain_speed:.0f} MiB/s"
              f"\n  backup: {size / MIB:.1f} MiB zip in {seconds:.2f} s ({size / MIB / seconds:.0f} MiB/s, "
              f"{size / MIB / seconds / plain_speed:.2f}x), "
              f"files RSS +{backup.growth / MIB:.1f} MiB (by quarter: "
              f"{', '.join(f'+{g / MIB:.0f}' for g in backup.growth_by_quarter())} MiB)")
        assert backup.growth < 64 * MIB, f"files grew by {backup.growth / MIB:.1f} MiB"

        chosen = {"files": [{"type": "FILE", "name": name} for name in sums]}
        with RssSampler(pid, every=0.02) as download:
            seconds, size = await _zip_to_file(me, "POST", "/api/files/download", target, json=chosen)
        _check(target, sums, "files/FILE/")
        print(f"  chosen download: {size / MIB:.1f} MiB zip in {seconds:.2f} s ({size / MIB / seconds:.0f} MiB/s, "
              f"{size / MIB / seconds / plain_speed:.2f}x), "
              f"files RSS +{download.growth / MIB:.1f} MiB")
        assert download.growth < 64 * MIB, f"files grew by {download.growth / MIB:.1f} MiB"


async def test_a_backup_of_many_small_files(files):
    """More files than one read by id takes (200): the batches join up, nothing twice or lost;
    the small blobs are read ahead of their turn (the speed printed)."""
    me, _ = await files.user_with(PRO)
    stored = {f"favs/{i:03d}.gpx": os.urandom(1024) for i in range(300)}
    names = iter(stored)

    async def uploader() -> None:
        for name in names:
            reply = await me.call("PUT", f"/api/files/FAVOURITES/{name}", data=stored[name])
            assert reply.status == 201, reply
    await asyncio.gather(*(uploader() for _ in range(8)))
    started = time.perf_counter()
    backup = await me.call("GET", "/api/files/backup")
    seconds = time.perf_counter() - started
    members, manifest = unzipped(backup.body)
    assert members == {f"files/FAVOURITES/{name}": data for name, data in stored.items()}
    assert len(manifest["files"]) == 300
    print(f"\n  backup of 300 files of 1 KiB: {seconds:.2f} s ({300 / seconds:.0f} files/s)")
