"""The export's zip on fakes: a valid archive whatever the sink (it cannot seek), members as
stored, a manifest with checksums, bytes sent chunk by chunk rather than at the end, and small
blobs read ahead in a bounded window."""

import asyncio
import hashlib
import io
import json
import zipfile

import pytest

from osmcloud_files.export import READ_AHEAD, member_name, stream_export, stream_zip

CHUNK = 64 * 1024


class Cursor:
    def __init__(self, docs):
        self.docs = docs

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        for d in self.docs:
            yield d


class FakeVersions:
    def __init__(self, docs):
        self.docs = {d["_id"]: d for d in docs}


class FakeStore:
    def __init__(self, versions, heads):
        self.versions, self.heads = FakeVersions(versions), heads

    async def versions_by_ids(self, user_id, ids):
        return {i: self.versions.docs[i] for i in ids if i in self.versions.docs}

    def stream_live_heads(self, user_id, types):
        return Cursor(self.heads)

    def stream_versions(self, user_id, types):
        return Cursor(list(self.versions.docs.values()))


class FakeBlobs:
    def __init__(self, blobs):
        self.blobs = blobs

    async def stream(self, key):
        data = self.blobs[key]
        for i in range(0, len(data), CHUNK):
            yield data[i:i + CHUNK]


def version(vid, file_type, name, data, ms, deleted=False):
    return {"_id": vid, "type": file_type, "name": name, "size": -1 if deleted else len(data), "deleted": deleted,
            "checksum": None if deleted else f"sha256:{hashlib.sha256(data).hexdigest()}",
            "blob_key": None if deleted else f"b/{vid}", "updated_ms": ms}


async def test_newest_versions_and_manifest_streamed_in_chunks():
    big = bytes(range(256)) * 4096  # 1 MiB
    versions = [version("v1", "GPX", "tracks/a.gpx", b"old", 1000), version("v2", "GPX", "tracks/a.gpx", big, 2000),
                version("v3", "FAVOURITES", "favourites.gpx", b"<gpx/>", 3000),
                version("v4", "GPX", "gone.gpx", b"", 4000, deleted=True)]
    heads = [{"head": {"version_id": "v2"}}, {"head": {"version_id": "v3"}}, {"head": {"version_id": "v4"}}]
    blobs = FakeBlobs({f"b/{v['_id']}": d for v, d in zip(versions, (b"old", big, b"<gpx/>", b""), strict=True)})
    sent: list[bytes] = []

    async def send(data):
        sent.append(data)
    summary = await stream_export(FakeStore(versions, heads), blobs, "u1", False, send)
    assert summary == {"files": 2, "bytes": len(big) + 6}
    assert max(len(s) for s in sent) <= CHUNK + 4096 and len(sent) > 16  # never the whole blob at once
    archive = zipfile.ZipFile(io.BytesIO(b"".join(sent)))
    assert archive.testzip() is None
    assert archive.read("files/GPX/tracks/a.gpx") == big
    manifest = json.loads(archive.read("manifest.json"))
    assert [(f["path"], f["checksum"]) for f in manifest["files"]] == [
        ("files/GPX/tracks/a.gpx", f"sha256:{hashlib.sha256(big).hexdigest()}"),
        ("files/FAVOURITES/favourites.gpx", versions[2]["checksum"])]


async def test_all_versions_skip_delete_markers():
    versions = [version("v1", "GPX", "a.gpx", b"one", 1000), version("v2", "GPX", "a.gpx", b"two", 2000),
                version("v3", "GPX", "a.gpx", b"", 3000, deleted=True)]
    blobs = FakeBlobs({"b/v1": b"one", "b/v2": b"two"})
    sent: list[bytes] = []

    async def send(data):
        sent.append(data)
    await stream_export(FakeStore(versions, []), blobs, "u1", True, send)
    archive = zipfile.ZipFile(io.BytesIO(b"".join(sent)))
    assert sorted(archive.read(n) for n in archive.namelist() if n != "manifest.json") == [b"one", b"two"]


class SlowBlobs:
    """Blobs whose reads wait for the test: how many run at once, and which were cancelled."""

    def __init__(self, blobs, ready=()):
        self.blobs, self.running, self.most, self.cancelled = blobs, 0, 0, []
        self.go, self.ready = asyncio.Event(), set(ready)  # reads of `ready` keys need no go

    async def stream(self, key):
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            if key not in self.ready:
                await self.go.wait()
            yield self.blobs[key]
        except asyncio.CancelledError:
            self.cancelled.append(key)
            raise
        finally:
            self.running -= 1


async def _members(versions):
    for v in versions:
        yield member_name(v, False), v


async def test_small_blobs_are_read_ahead_in_a_bounded_window():
    versions = [version(f"v{i}", "FAVOURITES", f"f{i}.gpx", b"x" * 100, i) for i in range(40)]
    blobs = SlowBlobs({f"b/v{i}": b"x" * 100 for i in range(40)})
    sent: list[bytes] = []

    async def send(data):
        sent.append(data)
    zipping = asyncio.ensure_future(stream_zip(blobs, _members(versions), {}, send))
    for _ in range(50):
        await asyncio.sleep(0)
    assert blobs.most == READ_AHEAD + 1  # the current member and the window ahead, no more
    blobs.go.set()
    assert (await zipping)["files"] == 40
    assert len(zipfile.ZipFile(io.BytesIO(b"".join(sent))).namelist()) == 41


async def test_reads_ahead_are_cancelled_when_the_zip_stops():
    versions = [version(f"v{i}", "FAVOURITES", f"f{i}.gpx", b"x" * 100, i) for i in range(40)]
    blobs = SlowBlobs({f"b/v{i}": b"x" * 100 for i in range(40)}, ready={"b/v0"})

    async def send(data):
        raise ConnectionResetError("the client went away")
    with pytest.raises(ConnectionResetError):
        await stream_zip(blobs, _members(versions), {}, send)
    assert blobs.running == 0 and len(blobs.cancelled) == READ_AHEAD  # every read ahead, none left
