"""The sync engine against a fake server (the real one is in tests/integration/test_cli_sync.py):
a race lost at the server (409) turns into a conflict, never an overwrite; a sync that stops
midway keeps what it finished."""

import hashlib
import os
from pathlib import Path

from osmcloud_cli.engine import Engine
from osmcloud_cli.errors import Offline, VersionConflict
from osmcloud_cli.layout import Key
from osmcloud_cli.state import State

K = Key("FAVOURITES", "home.gpx")


def checksum(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


class FakeServer:
    """Files with versions, a changes feed and base_version checks, in memory."""

    def __init__(self) -> None:
        self.seq = 0
        self.heads: dict[Key, dict] = {}
        self.blobs: dict[str, bytes] = {}
        self.feed: list[dict] = []
        self.fail_uploads_after: int | None = None
        self.uploads = 0

    def store(self, key: Key, data: bytes | None) -> dict:
        self.seq += 1
        version = {"type": key.type, "name": key.name, "version_id": f"v{self.seq}", "seq": self.seq,
                   "size": -1 if data is None else len(data), "checksum": None if data is None else checksum(data),
                   "updatetime": 1_000 * self.seq, "deleted": data is None, "device_id": "other"}
        if data is not None:
            self.blobs[version["version_id"]] = data
        self.heads[key] = version
        self.feed.append({**version, "kind": "deleted" if data is None else "uploaded"})
        return version

    # ---- the Api methods the engine calls
    async def changes(self, cursor, limit=1000):
        after = int(cursor or 0)
        return {"changes": [c for c in self.feed if c["seq"] > after], "cursor": str(self.seq), "more": False}

    async def live_files(self):
        return [h for h in self.heads.values() if not h["deleted"]]

    async def backup_types(self):
        return [{"type": "FAVOURITES", "enabled": True}]

    async def upload(self, key, path, size, base, clienttime, progress):
        if self.fail_uploads_after is not None and self.uploads >= self.fail_uploads_after:
            raise Offline("connection lost")
        self.uploads += 1
        head = self.heads.get(key)
        if (head["version_id"] if head else None) != base and not (head and head["deleted"] and base is None):
            raise VersionConflict("moved", details={"head": head})
        return self.store(key, path.read_bytes())

    async def download(self, key, version_id, target: Path, progress):
        data = self.blobs[version_id]
        target.write_bytes(data)
        return checksum(data), len(data)

    async def delete(self, key, base):
        head = self.heads.get(key)
        if head["version_id"] != base:
            raise VersionConflict("moved", details={"head": head})
        return self.store(key, None)


def engine(tmp_path: Path, server: FakeServer, name: str) -> Engine:
    folder = tmp_path / name
    folder.mkdir()
    return Engine(server, State(folder), folder)  # type: ignore[arg-type]


async def test_a_race_lost_at_the_server_becomes_a_conflict_and_overwrites_nothing(tmp_path):
    server = FakeServer()
    server.store(K, b"v1")
    laptop = engine(tmp_path, server, "laptop")
    await laptop.sync()
    path = laptop.folder / "favorites" / "home.gpx"
    assert path.read_bytes() == b"v1"
    path.write_bytes(b"edited on the laptop")
    analysis = await laptop.analyze()  # decided: upload based on v1 ...
    assert [str(i.decision.action) for i in analysis.items] == ["upload"]
    server.store(K, b"edited on the phone meanwhile")  # ... but the phone wins the race
    # the engine's own refresh would see the phone's version; skip it to force the 409 path
    laptop.refresh_cloud = _no_refresh  # type: ignore[method-assign]
    _, summary = await laptop.sync()
    assert [i.key for i in summary.conflicts] == [K] and summary.done["upload"] == 0
    assert path.read_bytes() == b"edited on the laptop"
    assert server.heads[K]["checksum"] == checksum(b"edited on the phone meanwhile")
    assert laptop.state.cloud_one(K).version_id == server.heads[K]["version_id"]  # learnt from the 409


async def _no_refresh() -> None:
    return None


async def test_a_sync_stopped_by_a_network_loss_keeps_what_it_finished(tmp_path):
    server = FakeServer()
    laptop = engine(tmp_path, server, "laptop")
    for i in range(5):
        (laptop.folder / "favorites").mkdir(exist_ok=True)
        (laptop.folder / "favorites" / f"f{i}.gpx").write_bytes(b"x" * (i + 1))
    server.fail_uploads_after = 2
    laptop.jobs = 1
    _, summary = await laptop.sync()
    assert isinstance(summary.fatal, Offline) and summary.done["upload"] == 2
    assert len(laptop.state.synced()) == 2 and laptop.state.last_sync is None
    server.fail_uploads_after = None
    _, resumed = await laptop.sync()
    assert resumed.done["upload"] == 3 and resumed.fatal is None and len(laptop.state.synced()) == 5
    assert len([c for c in server.feed if c["kind"] == "uploaded"]) == 5  # nothing sent twice


async def test_a_file_removed_here_right_after_its_download_is_a_failed_file_not_a_crash(tmp_path, monkeypatch):
    server = FakeServer()
    server.store(K, b"v1")
    laptop = engine(tmp_path, server, "laptop")
    put_in_place = os.replace

    def put_in_place_then_removed(source, target):  # a person deletes the file the moment it lands
        put_in_place(source, target)
        Path(target).unlink()
    monkeypatch.setattr(os, "replace", put_in_place_then_removed)
    _, summary = await laptop.sync()
    monkeypatch.undo()
    assert [(i.key, e.code) for i, e in summary.failed] == [(K, "changed_here")] and summary.fatal is None
    assert laptop.state.synced_one(K) is None  # nothing recorded: the next sync downloads it again
    _, again = await laptop.sync()
    assert again.done["download"] == 1 and (laptop.folder / "favorites" / "home.gpx").read_bytes() == b"v1"
