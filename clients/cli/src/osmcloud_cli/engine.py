"""Sync of one folder with the cloud: learn the cloud heads (changes feed), look at the
local files (state database), decide per file (rules.py), then carry the decisions out -
many small files at once, large ones streamed - committing each finished file to the state
database at once, so a sync stopped anywhere loses nothing and the next run resumes.

The cloud side: the changes feed is read from the folder's cursor and applied to the
`cloud` table; then the live listing (`GET /api/files`) corrects what the feed cannot say:
a file deleted and then purged from the trash between two syncs leaves no entry in the
feed (its versions are gone), but it is missing from the listing."""

import asyncio
import hashlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .api import Api
from .errors import CliError, NotFound, NotLoggedIn, Offline, VersionConflict
from .layout import PARTIAL_PREFIX, TYPE_FOLDERS, Key, LocalStat, local_path, scan, stat_of, syncable_name
from .rules import Action, Cloud, Decision, Local, Synced, decide
from .state import CloudRow, State, SyncedRow

HASH_CHUNK = 1024 * 1024


class LocalMoved(CliError):
    """The local file changed between the decision and the action."""
    code = "changed_here"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def cloud_row(view: dict[str, Any]) -> CloudRow:
    """A head or version as the API shows it."""
    return CloudRow(seq=view.get("seq") or 0, version_id=view["version_id"], deleted=bool(view.get("deleted")),
                    size=view.get("size"), checksum=view.get("checksum"), updatetime=view.get("updatetime"),
                    device_id=view.get("device_id"))


@dataclass
class Item:
    """One file whose sides differ, with what sync will do about it."""
    key: Key
    decision: Decision
    synced: SyncedRow | None
    cloud: CloudRow | None
    local: LocalStat | None
    local_checksum: str | None = None

    @property
    def transfer_bytes(self) -> int:
        if self.decision.action == Action.UPLOAD and self.local:
            return self.local.size
        if self.decision.action == Action.DOWNLOAD and self.cloud and self.cloud.size:
            return self.cloud.size
        return 0

    def view(self) -> dict[str, Any]:
        return {
            "type": self.key.type, "name": self.key.name, "path": self.key.path,
            "action": str(self.decision.action),
            "conflict": str(self.decision.conflict) if self.decision.conflict else None,
            "local": None if self.local is None else {"size": self.local.size,
                                                      "modified_ms": self.local.mtime_ns // 1_000_000},
            "cloud": None if self.cloud is None or self.cloud.version_id is None else {
                "version_id": self.cloud.version_id, "deleted": self.cloud.deleted, "size": self.cloud.size,
                "updatetime": self.cloud.updatetime, "device_id": self.cloud.device_id},
            "last_synced": None if self.synced is None else {"version_id": self.synced.version_id,
                                                             "at": self.synced.synced_at},
        }


@dataclass
class Analysis:
    items: list[Item]                 # every file with something to do or a conflict, sorted by type then name
    switched_off: list[str]           # types whose backup is off: not synced
    unsyncable: list[str] = field(default_factory=list)  # cloud names that cannot be local files

    def of(self, *actions: Action) -> list[Item]:
        return [i for i in self.items if i.decision.action in actions]

    @property
    def local_changes(self) -> list[Item]:
        return [i for i in self.items if i.decision.is_local_change]

    @property
    def cloud_changes(self) -> list[Item]:
        return [i for i in self.items if i.decision.is_cloud_change]

    @property
    def conflicts(self) -> list[Item]:
        return self.of(Action.CONFLICT)


@dataclass
class Summary:
    done: dict[str, int] = field(default_factory=lambda: {a.value: 0 for a in Action if a not in (
        Action.NOTHING, Action.CONFLICT)})
    bytes_up: int = 0
    bytes_down: int = 0
    conflicts: list[Item] = field(default_factory=list)
    failed: list[tuple[Item, CliError]] = field(default_factory=list)
    seconds: float = 0.0
    fatal: CliError | None = None

    def view(self) -> dict[str, Any]:
        return {"uploaded": self.done["upload"], "downloaded": self.done["download"],
                "deleted_in_cloud": self.done["delete_cloud"], "deleted_here": self.done["delete_local"],
                "agreed": self.done["agree"], "bytes_up": self.bytes_up, "bytes_down": self.bytes_down,
                "seconds": round(self.seconds, 3),
                "conflicts": [i.view() for i in self.conflicts],
                "failed": [{**i.view(), "error": e.code, "message": e.message} for i, e in self.failed]}


class Reporter(Protocol):
    """What a sync tells about its progress (the CLI draws bars; tests and --json stay quiet)."""

    def begin(self, files: int, total_bytes: int) -> None: ...

    def file_started(self, item: Item) -> Callable[[int], None]: ...

    def file_finished(self, item: Item, error: CliError | None) -> None: ...

    def end(self) -> None: ...


class QuietReporter:
    def begin(self, files: int, total_bytes: int) -> None:
        pass

    def file_started(self, item: Item) -> Callable[[int], None]:
        return lambda n: None

    def file_finished(self, item: Item, error: CliError | None) -> None:
        pass

    def end(self) -> None:
        pass


class Engine:
    def __init__(self, api: Api, state: State, folder: Path, *, jobs: int = 8) -> None:
        self.api, self.state, self.folder, self.jobs = api, state, folder, jobs
        self._hashing = asyncio.Semaphore(2)

    # ------------------------------------------------------------ the cloud side
    async def refresh_cloud(self) -> None:
        """Brings the `cloud` table up to date: the feed from the stored cursor, then the listing."""
        cursor = self.state.get("cursor")
        while True:
            page = await self.api.changes(cursor)
            with self.state.transaction():
                if page.get("reset"):
                    self.state.reset_cloud()  # all data was deleted since the cursor: the listing rebuilds it
                for change in page["changes"]:
                    self._apply_change(change)
                self.state.put("cursor", page["cursor"])
            cursor = page["cursor"]
            if not page.get("more"):
                break
        live = {Key(f["type"], f["name"]): f for f in await self.api.live_files()}
        known = self.state.cloud()
        with self.state.transaction():
            for key, view in live.items():
                row = cloud_row(view)
                current = known.get(key)
                if current is None or current.seq < row.seq or (current.seq == row.seq and not current.live):
                    self.state.set_cloud(key, row, force=True)
            for key, row in known.items():
                if row.live and key not in live:
                    # deleted since the feed was read, or deleted and purged: no live version either way
                    self.state.set_cloud(key, CloudRow(seq=row.seq, version_id=None, deleted=False), force=True)

    def _apply_change(self, change: dict[str, Any]) -> None:
        key = Key(change["type"], change["name"])
        if change["kind"] == "head_changed":
            head = change.get("head")
            row = cloud_row(head) if head else CloudRow(seq=change["seq"], version_id=None, deleted=False)
            self.state.set_cloud(key, CloudRow(**{**row.__dict__, "seq": change["seq"]}))
        else:
            self.state.set_cloud(key, cloud_row(change))

    # ------------------------------------------------------------ deciding
    async def analyze(self, only: set[Key] | None = None, *, refresh: bool = True) -> Analysis:
        """Every file whose sides differ. `only`: just these files (their backup switch is not
        looked at: resolving a conflict works whatever the switch)."""
        if refresh:
            await self.refresh_cloud()
        synced = self.state.synced()
        cloud = self.state.cloud()
        if only is None:
            switched_off = sorted(t["type"] for t in await self.api.backup_types() if not t["enabled"])
            types = set(TYPE_FOLDERS) - set(switched_off)
            local = scan(self.folder, types)
            keys = set(local) | set(synced) | {k for k, row in cloud.items() if row.live}
            keys = {k for k in keys if k.type in types}
        else:
            switched_off, keys = [], set(only)
            local = {k: st for k in keys if (st := stat_of(local_path(self.folder, k))) is not None}
        unsyncable = sorted(k.path for k in keys if not syncable_name(k.name))
        keys = {k for k in keys if syncable_name(k.name)}

        async def judge(key: Key) -> Item:
            stat = local.get(key)
            row = synced.get(key)
            head = cloud.get(key)
            checksum = None
            if stat is not None and row is not None and (stat.size, stat.mtime_ns) != (row.size, row.mtime_ns):
                checksum = await self._hash(key)
                if checksum == row.checksum:
                    self.state.restat(key, stat.size, stat.mtime_ns)  # touched, not changed
            elif stat is not None and row is None and head is not None and head.live:
                checksum = await self._hash(key)
            local_fact = None if stat is None else Local(
                changed=row is None or (checksum is not None and checksum != row.checksum), checksum=checksum)
            decision = decide(None if row is None else Synced(row.version_id, row.checksum), local_fact,
                              None if head is None or head.version_id is None else
                              Cloud(head.version_id, head.deleted, head.checksum))
            return Item(key, decision, row, head, stat, checksum)

        items = [i for i in await asyncio.gather(*(judge(k) for k in keys)) if i.decision.action != Action.NOTHING]
        items.sort(key=lambda i: (i.key.type, i.key.name))
        return Analysis(items, switched_off, unsyncable)

    async def _hash(self, key: Key) -> str | None:
        async with self._hashing:
            try:
                return await asyncio.to_thread(sha256_file, local_path(self.folder, key))
            except FileNotFoundError:
                return None

    # ------------------------------------------------------------ syncing
    async def sync(self, reporter: Reporter | None = None, only: set[Key] | None = None) -> tuple[Analysis, Summary]:
        reporter = reporter or QuietReporter()
        started = time.monotonic()
        self.clean_partials()
        analysis = await self.analyze(only)
        summary = Summary(conflicts=list(analysis.conflicts))
        work = [i for i in analysis.items if i.decision.action != Action.CONFLICT]
        work.sort(key=lambda i: i.transfer_bytes)  # many small files first, the large ones last
        reporter.begin(len(work), sum(i.transfer_bytes for i in work))
        gate = asyncio.Semaphore(self.jobs)
        stop = asyncio.Event()

        async def run(item: Item) -> None:
            async with gate:
                if stop.is_set():
                    return
                progress = reporter.file_started(item)
                error: CliError | None = None
                try:
                    await self._carry_out(item, summary, progress)
                except (Offline, NotLoggedIn) as exc:
                    error = exc
                    summary.fatal = summary.fatal or exc
                    stop.set()
                except CliError as exc:
                    error = exc
                    summary.failed.append((item, exc))
                reporter.file_finished(item, error)

        try:
            await asyncio.gather(*(run(i) for i in work))
        finally:
            reporter.end()
        summary.conflicts.sort(key=lambda i: (i.key.type, i.key.name))
        summary.failed.sort(key=lambda f: (f[0].key.type, f[0].key.name))
        if summary.fatal is None:
            self.state.mark_synced()
        summary.seconds = time.monotonic() - started
        return analysis, summary

    async def _carry_out(self, item: Item, summary: Summary, progress: Callable[[int], None],
                         retried: bool = False) -> None:
        action = item.decision.action
        try:
            if action == Action.UPLOAD:
                summary.bytes_up += await self._upload(item, item.decision.base_version, progress)
            elif action == Action.DOWNLOAD:
                summary.bytes_down += await self._download(item, progress)
            elif action == Action.DELETE_CLOUD:
                await self._delete_cloud(item)
            elif action == Action.DELETE_LOCAL:
                self._delete_local(item)
            elif action == Action.AGREE:
                self._agree(item)
        except (VersionConflict, LocalMoved) as exc:
            # a side moved after the decision (the server's 409, or the local file): decide once more
            if isinstance(exc, VersionConflict):
                head = exc.head
                self.state.set_cloud(item.key, cloud_row(head) if head else CloudRow(
                    seq=item.cloud.seq if item.cloud else 0, version_id=None, deleted=False), force=True)
            again = await self.analyze({item.key}, refresh=False)
            retry = again.items[0] if again.items else None
            if retry is None:
                return
            if retry.decision.action == Action.CONFLICT:
                summary.conflicts.append(retry)
                return
            if retried or retry.decision == item.decision:
                raise
            await self._carry_out(retry, summary, progress, retried=True)
            return
        summary.done[action.value] += 1

    async def _upload(self, item: Item, base: str | None, progress: Callable[[int], None]) -> int:
        path = local_path(self.folder, item.key)
        before = stat_of(path)
        if before is None:
            raise CliError(f"{item.key.path} disappeared before it was uploaded; the next sync looks again",
                           code="vanished")
        version = await self.api.upload(item.key, path, before.size, base, before.mtime_ns // 1_000_000, progress)
        with self.state.transaction():
            # the stat from before the upload: a file edited meanwhile looks changed next time
            self.state.set_synced(item.key, version["version_id"], version.get("checksum"), before.size,
                                  before.mtime_ns, version.get("updatetime"))
            self.state.set_cloud(item.key, cloud_row(version))
        return before.size

    async def _download(self, item: Item, progress: Callable[[int], None]) -> int:
        head = item.cloud
        # rules.decide downloads a live cloud version only, and resolve() downloads its live head
        assert head is not None and head.version_id is not None, f"{item.key.path}: no cloud version to download"
        path = local_path(self.folder, item.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.parent / f"{PARTIAL_PREFIX}{secrets.token_hex(6)}"
        try:
            checksum, size = await self.api.download(item.key, head.version_id, partial, progress)
            if stat_of(path) != item.local:  # edited here while the cloud version came in
                raise LocalMoved(f"{item.key.path} changed here during the download")
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        after = stat_of(path)
        if after is None:  # removed here the moment it landed: record nothing, decide again
            raise LocalMoved(f"{item.key.path} was removed here right after its download")
        with self.state.transaction():
            self.state.set_synced(item.key, head.version_id, checksum, after.size, after.mtime_ns, head.updatetime)
        return size

    async def _delete_cloud(self, item: Item) -> None:
        try:
            marker = await self.api.delete(item.key, item.decision.base_version)
        except NotFound:  # gone already (deleted and purged elsewhere): both sides agree
            self.state.forget(item.key)
            return
        with self.state.transaction():
            self.state.forget(item.key)
            self.state.set_cloud(item.key, cloud_row(marker))

    def _delete_local(self, item: Item) -> None:
        path = local_path(self.folder, item.key)
        if stat_of(path) != item.local:
            raise LocalMoved(f"{item.key.path} changed here meanwhile")
        path.unlink(missing_ok=True)
        self.state.forget(item.key)
        self._prune_empty_dirs(path.parent)

    def _agree(self, item: Item) -> None:
        cloud = item.cloud
        if cloud is not None and cloud.version_id is not None and not cloud.deleted and item.local is not None:
            self.state.set_synced(item.key, cloud.version_id, cloud.checksum, item.local.size,
                                  item.local.mtime_ns, cloud.updatetime)
        else:
            self.state.forget(item.key)

    def _prune_empty_dirs(self, directory: Path) -> None:
        """Removes folders emptied by a deletion, up to (not including) the type's folder."""
        top = {self.folder / f for f in TYPE_FOLDERS.values()}
        while directory not in top and self.folder in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def clean_partials(self) -> None:
        """Downloads an interrupted run left behind (hidden files, never synced)."""
        for folder in TYPE_FOLDERS.values():
            base = self.folder / folder
            if base.is_dir():
                for partial in base.rglob(f"{PARTIAL_PREFIX}*"):
                    partial.unlink(missing_ok=True)

    # ------------------------------------------------------------ resolving one conflict
    async def resolve(self, key: Key, keep: str, progress: Callable[[int], None] = lambda n: None) -> dict[str, Any]:
        """`keep` = "local": the local file (or its deletion) replaces the cloud head;
        "cloud": the cloud head (or its deletion) replaces the local file, whose content is
        first copied to .osmcloud/replaced/ - so both versions are always kept somewhere."""
        analysis = await self.analyze({key})
        item = analysis.items[0] if analysis.items else None
        if item is None or item.decision.action != Action.CONFLICT:
            what = "nothing to resolve" if item is None else f"not a conflict (sync will {item.decision.action})"
            raise CliError(f"{key.path}: {what}", code="not_a_conflict")
        head = item.cloud if item.cloud is not None and item.cloud.version_id is not None else None
        if keep == "local":
            if item.local is None:
                # a conflict with the local file gone has a live cloud head (rules.decide: DELETED_HERE)
                await self._delete_cloud(Item(key, Decision(Action.DELETE_CLOUD,
                                                            base_version=head.version_id if head else None),
                                              item.synced, head, None))
                return {"path": key.path, "kept": "local", "result": "deleted in the cloud"}
            await self._upload(item, head.version_id if head else None, progress)
            return {"path": key.path, "kept": "local", "result": "uploaded",
                    "replaced_cloud_version": head.version_id if head else None}
        kept_copy = self._keep_copy(key) if item.local is not None else None
        if head is None or head.deleted:
            path = local_path(self.folder, key)
            path.unlink(missing_ok=True)
            with self.state.transaction():
                self.state.forget(key)
            self._prune_empty_dirs(path.parent)
            result = "deleted here"
        else:
            await self._download(item, progress)
            result = "downloaded"
        return {"path": key.path, "kept": "cloud", "result": result,
                "local_copy": str(kept_copy) if kept_copy else None}

    def _keep_copy(self, key: Key) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.folder / ".osmcloud" / "replaced" / stamp / key.path
        target.parent.mkdir(parents=True, exist_ok=True)
        source = local_path(self.folder, key)
        with open(source, "rb") as src, open(target, "wb") as dst:
            while chunk := src.read(HASH_CHUNK):
                dst.write(chunk)
        return target
