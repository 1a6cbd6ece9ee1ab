"""The folder's state database (SQLite, `<folder>/.osmcloud/state.db`).

  synced  per file, the cloud version this folder last agreed on, with the local file's
          size and mtime at that moment (an unchanged stat means an unchanged file, so a
          sync reads only files whose stat moved) and when that was;
  cloud   per file, the cloud head as the changes feed last reported it (version id, or
          none once every version is gone), with the feed's change number, so an older
          report never overwrites a newer one;
  meta    the server and account the folder belongs to, the feed cursor, the last sync.

Every change is committed at once: a sync stopped at any point keeps what it finished."""

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .layout import Key

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS synced (
    type TEXT NOT NULL, name TEXT NOT NULL, version_id TEXT NOT NULL, checksum TEXT,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, updatetime INTEGER, synced_at REAL NOT NULL,
    PRIMARY KEY (type, name));
CREATE TABLE IF NOT EXISTS cloud (
    type TEXT NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL, version_id TEXT, deleted INTEGER NOT NULL,
    size INTEGER, checksum TEXT, updatetime INTEGER, device_id TEXT,
    PRIMARY KEY (type, name));
"""


@dataclass(frozen=True)
class SyncedRow:
    version_id: str
    checksum: str | None
    size: int
    mtime_ns: int
    updatetime: int | None
    synced_at: float


@dataclass(frozen=True)
class CloudRow:
    """The cloud head of a file; version_id None: no version left (deleted for good)."""
    seq: int
    version_id: str | None
    deleted: bool
    size: int | None = None
    checksum: str | None = None
    updatetime: int | None = None
    device_id: str | None = None

    @property
    def live(self) -> bool:
        return self.version_id is not None and not self.deleted


class FolderOwnedElsewhere(Exception):
    """The folder was synced with another account or server."""


class State:
    def __init__(self, folder: Path) -> None:
        state_dir = folder / ".osmcloud"
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = state_dir / "state.db"
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.path.chmod(0o600)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------ meta
    def get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, value: str | None) -> None:
        if value is None:
            self.db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self.db.execute("INSERT INTO meta(key, value) VALUES(?, ?) "
                            "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def claim(self, server: str, user_id: str) -> None:
        """Binds the folder to one account on one server; refuses another."""
        owner = self.get("user_id")
        if owner is not None and (owner != user_id or self.get("server") != server):
            raise FolderOwnedElsewhere(
                f"this folder was synced with another account ({self.get('email') or owner} on {self.get('server')}); "
                f"use another folder, or remove its .osmcloud/ directory to start over")
        self.put("server", server)
        self.put("user_id", user_id)

    @property
    def last_sync(self) -> float | None:
        value = self.get("last_sync")
        return float(value) if value else None

    def mark_synced(self) -> None:
        self.put("last_sync", repr(time.time()))

    # ------------------------------------------------------------ synced versions
    def synced(self) -> dict[Key, SyncedRow]:
        return {Key(t, n): SyncedRow(v, c, s, m, u, a) for t, n, v, c, s, m, u, a in self.db.execute(
            "SELECT type, name, version_id, checksum, size, mtime_ns, updatetime, synced_at FROM synced")}

    def synced_one(self, key: Key) -> SyncedRow | None:
        row = self.db.execute("SELECT version_id, checksum, size, mtime_ns, updatetime, synced_at FROM synced "
                              "WHERE type = ? AND name = ?", (key.type, key.name)).fetchone()
        return SyncedRow(*row) if row else None

    def set_synced(self, key: Key, version_id: str, checksum: str | None, size: int, mtime_ns: int,
                   updatetime: int | None) -> None:
        self.db.execute(
            "INSERT INTO synced(type, name, version_id, checksum, size, mtime_ns, updatetime, synced_at) "
            "VALUES(?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(type, name) DO UPDATE SET version_id = excluded.version_id, "
            "checksum = excluded.checksum, size = excluded.size, mtime_ns = excluded.mtime_ns, "
            "updatetime = excluded.updatetime, synced_at = excluded.synced_at",
            (key.type, key.name, version_id, checksum, size, mtime_ns, updatetime, time.time()))

    def restat(self, key: Key, size: int, mtime_ns: int) -> None:
        """The file was read and found unchanged: remember its new stat to skip reading it next time."""
        self.db.execute("UPDATE synced SET size = ?, mtime_ns = ? WHERE type = ? AND name = ?",
                        (size, mtime_ns, key.type, key.name))

    def forget(self, key: Key) -> None:
        self.db.execute("DELETE FROM synced WHERE type = ? AND name = ?", (key.type, key.name))

    # ------------------------------------------------------------ cloud heads
    def cloud(self) -> dict[Key, CloudRow]:
        return {Key(t, n): CloudRow(s, v, bool(d), z, c, u, dev) for t, n, s, v, d, z, c, u, dev in self.db.execute(
            "SELECT type, name, seq, version_id, deleted, size, checksum, updatetime, device_id FROM cloud")}

    def cloud_one(self, key: Key) -> CloudRow | None:
        row = self.db.execute("SELECT seq, version_id, deleted, size, checksum, updatetime, device_id FROM cloud "
                              "WHERE type = ? AND name = ?", (key.type, key.name)).fetchone()
        return CloudRow(row[0], row[1], bool(row[2]), *row[3:]) if row else None

    def set_cloud(self, key: Key, row: CloudRow, *, force: bool = False) -> None:
        """Records a head unless a newer one (higher change number) is already known."""
        self.db.execute(
            "INSERT INTO cloud(type, name, seq, version_id, deleted, size, checksum, updatetime, device_id) "
            "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(type, name) DO UPDATE SET seq = excluded.seq, "
            "version_id = excluded.version_id, deleted = excluded.deleted, size = excluded.size, "
            "checksum = excluded.checksum, updatetime = excluded.updatetime, device_id = excluded.device_id "
            + ("" if force else "WHERE excluded.seq >= cloud.seq"),
            (key.type, key.name, row.seq, row.version_id, int(row.deleted), row.size, row.checksum, row.updatetime,
             row.device_id))

    def reset_cloud(self) -> None:
        self.db.execute("DELETE FROM cloud")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """The changes made inside are committed together, or rolled back on any exception (re-raised)."""
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
