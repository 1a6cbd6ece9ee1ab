"""Automatic backup (`osmcloud sync --watch`): a sync at start, after every change in the
folder (watchfiles, changes within `debounce_ms` gathered into one), and at least every
`interval` seconds - like the app's hourly auto backup - until stopped."""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from watchfiles import Change, awatch

from .layout import STATE_DIR


def interesting(folder: Path) -> Callable[[Change, str], bool]:
    """Changes of syncable files only: not the client's own state, not hidden files (such as
    downloads in progress), so a sync's own bookkeeping never wakes the next one."""
    def check(change: Change, path: str) -> bool:
        try:
            parts = Path(path).relative_to(folder).parts
        except ValueError:
            return False
        return bool(parts) and parts[0] != STATE_DIR and not any(p.startswith(".") for p in parts)
    return check


async def watch_loop(sync_once: Callable[[], Awaitable[float | None]], folder: Path, interval: float,
                     debounce_ms: int = 1000, rounds: int | None = None) -> None:
    """`sync_once` returns None, or how many seconds to wait at most before the next try
    (after an error); `rounds` ends the loop after that many syncs (tests)."""
    changed = asyncio.Event()
    stop = asyncio.Event()

    async def watcher() -> None:
        async for _ in awatch(folder, watch_filter=interesting(folder), debounce=debounce_ms, stop_event=stop,
                              recursive=True):
            changed.set()

    task = asyncio.create_task(watcher())
    done = 0
    try:
        while rounds is None or done < rounds:
            changed.clear()
            wait = await sync_once()
            done += 1
            if rounds is not None and done >= rounds:
                break
            try:
                await asyncio.wait_for(changed.wait(), timeout=wait if wait is not None else interval)
            except TimeoutError:
                pass
    finally:
        stop.set()
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
