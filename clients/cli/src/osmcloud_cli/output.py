"""How results look: rich tables and progress bars for people, JSON for scripts."""

import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from .engine import Analysis, Item, Summary
from .errors import CliError
from .rules import Action

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

LARGE = 16 * 1024 * 1024  # files this large get a bar of their own


def new_table(title: str) -> Table:
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def size(n: int | None) -> str:
    if n is None or n < 0:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def when(epoch_seconds: float | None) -> str:
    if not epoch_seconds:
        return "-"
    return datetime.fromtimestamp(epoch_seconds).strftime("%Y-%m-%d %H:%M:%S")


def when_ms(ms: int | None) -> str:
    return when(ms / 1000) if ms else "-"


def ago(epoch_seconds: float | None) -> str:
    if not epoch_seconds:
        return "never"
    seconds = max(0.0, time.time() - epoch_seconds)
    if seconds < 60:
        n, unit = int(seconds), "second"
    elif seconds < 3600:
        n, unit = int(seconds // 60), "minute"
    elif seconds < 86400:
        n, unit = int(seconds // 3600), "hour"
    else:
        n, unit = int(seconds // 86400), "day"
    return f"{n} {unit}{'' if n == 1 else 's'} ago"


# ---------------------------------------------------------------- status and lists
CHANGE_WORDS = {
    Action.UPLOAD: "to upload", Action.DELETE_CLOUD: "to delete in the cloud",
    Action.DOWNLOAD: "to download", Action.DELETE_LOCAL: "to delete here",
    Action.AGREE: "same on both sides", Action.CONFLICT: "conflict",
}


def local_time(item: Item) -> str:
    return when(item.local.mtime_ns / 1e9) if item.local is not None else "missing"


def cloud_time(item: Item) -> str:
    cloud = item.cloud
    if cloud is None or cloud.version_id is None:
        return "none"
    return when_ms(cloud.updatetime) + (" deleted" if cloud.deleted else "")


def items_table(title: str, items: list[Item]) -> Table:
    """Each file with both sides' times: the local file's modification, the cloud version's upload."""
    table = new_table(title)
    table.add_column("type", no_wrap=True)
    table.add_column("path", overflow="fold", min_width=min(60, max((len(i.key.path) for i in items), default=4)))
    table.add_column("change", min_width=12)
    table.add_column("here (modified)", no_wrap=True)
    table.add_column("cloud (uploaded)", no_wrap=True)
    table.add_column("last synced", no_wrap=True)
    for item in items:
        change = str(item.decision.conflict) if item.decision.conflict else CHANGE_WORDS[item.decision.action]
        table.add_row(item.key.type, item.key.path, change, local_time(item), cloud_time(item),
                      when(item.synced.synced_at) if item.synced else "never")
    return table


def status_view(account: dict[str, str], last_sync: float | None, analysis: Analysis,
                verbose: bool) -> dict[str, Any]:
    view: dict[str, Any] = {**account, "last_sync": last_sync, "last_sync_ago": ago(last_sync),
                            "local_changes": len(analysis.local_changes),
                            "cloud_changes": len(analysis.cloud_changes),
                            "conflicts": len(analysis.conflicts), "backup_switched_off": analysis.switched_off}
    if verbose:
        view["items"] = {"local_changes": [i.view() for i in analysis.local_changes],
                         "cloud_changes": [i.view() for i in analysis.cloud_changes],
                         "conflicts": [i.view() for i in analysis.conflicts]}
    if analysis.unsyncable:
        view["unsyncable"] = analysis.unsyncable
    return view


def print_status(view: dict[str, Any], analysis: Analysis, verbose: bool) -> None:
    out.print(f"[bold]{view['email']}[/] on {view['server']}, folder {view['folder']}")
    out.print(f"Last sync:      {view['last_sync_ago']}"
              + (f" ({when(view['last_sync'])})" if view["last_sync"] else ""))
    out.print(f"Local changes:  {view['local_changes']}")
    out.print(f"Cloud changes:  {view['cloud_changes']}")
    out.print(f"Conflicts:      {view['conflicts']}")
    if analysis.switched_off:
        out.print(f"Backup off for: {', '.join(analysis.switched_off)} (not synced; osmcloud select TYPE on)")
    if analysis.unsyncable:
        out.print(f"[yellow]Cloud names that cannot be files here (skipped):[/] {', '.join(analysis.unsyncable)}")
    if verbose:
        for title, items in (("Local changes", analysis.local_changes), ("Cloud changes", analysis.cloud_changes),
                             ("Conflicts", analysis.conflicts)):
            if items:
                out.print(items_table(title, items))
    elif view["conflicts"] or view["local_changes"] or view["cloud_changes"]:
        out.print("[dim]osmcloud status -v lists them; osmcloud sync carries them out[/]")


def print_summary(summary: Summary) -> None:
    rows = [("uploaded", summary.done["upload"], size(summary.bytes_up)),
            ("downloaded", summary.done["download"], size(summary.bytes_down)),
            ("deleted in the cloud (to the trash)", summary.done["delete_cloud"], ""),
            ("deleted here", summary.done["delete_local"], ""),
            ("already the same on both sides", summary.done["agree"], ""),
            ("conflicts left for you", len(summary.conflicts), ""),
            ("failed", len(summary.failed), "")]
    rows = [r for r in rows if r[1]]
    if not rows:
        out.print(f"Nothing to do: the folder and the cloud are in sync ({summary.seconds:.1f} s).")
    else:
        table = new_table(f"Sync finished in {summary.seconds:.1f} s")
        table.add_column("what")
        table.add_column("files", justify="right")
        table.add_column("bytes", justify="right")
        for what, count, nbytes in rows:
            table.add_row(what, str(count), nbytes)
        out.print(table)
    if summary.conflicts:
        out.print(items_table("Conflicts, left untouched (osmcloud diff PATH, then osmcloud resolve PATH "
                              "--upload-local | --download-cloud)", summary.conflicts))
    for item, error in summary.failed:
        err.print(f"[red]failed[/] {item.key.path}: {error.message}")


# ---------------------------------------------------------------- progress
class BarReporter:
    """One bar for the whole sync (bytes, files done of all) and one per large file."""

    def __init__(self, console: Console = err) -> None:
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=False,
                                 disable=not console.is_terminal)
        self.total: TaskID | None = None
        self.files = self.done = 0
        self.bars: dict[object, TaskID] = {}

    def begin(self, files: int, total_bytes: int) -> None:
        self.files = files
        if files:
            self.progress.start()
            self.total = self.progress.add_task(self._label(), total=max(total_bytes, 1))

    def _label(self) -> str:
        return f"sync: {self.done}/{self.files} files"

    def file_started(self, item: Item) -> Callable[[int], None]:
        own = self.progress.add_task(item.key.path, total=item.transfer_bytes) if item.transfer_bytes >= LARGE else None

        def advance(n: int) -> None:
            if self.total is not None:  # begin() made it: a sync with files to transfer
                self.progress.advance(self.total, n)
            if own is not None:
                self.progress.advance(own, n)
        if own is not None:
            self.bars[item.key] = own
        return advance

    def file_finished(self, item: Item, error: CliError | None) -> None:
        self.done += 1
        if self.total is not None:
            self.progress.update(self.total, description=self._label())
        own = self.bars.pop(item.key, None)
        if own is not None:
            self.progress.remove_task(own)

    def end(self) -> None:
        if self.files:
            self.progress.stop()
