"""Automatic backup: a sync at start, one after a change in the folder, and one when the
interval passes with no change; the client's own state never wakes it."""

import asyncio

from osmcloud_cli.watch import interesting, watch_loop


async def test_syncs_at_start_on_change_and_after_the_interval(tmp_path):
    (tmp_path / "tracks").mkdir()
    runs: list[float] = []
    loop = asyncio.get_running_loop()

    async def sync_once():
        runs.append(loop.time())
        if len(runs) == 1:
            # a change right after the first sync: wakes the loop long before the interval
            loop.call_later(0.3, (tmp_path / "tracks" / "new.gpx").write_text, "x")
        return None

    started = loop.time()
    await asyncio.wait_for(watch_loop(sync_once, tmp_path, interval=30, debounce_ms=50, rounds=2), timeout=20)
    assert len(runs) == 2 and runs[1] - started < 15  # woken by the change, not the 30 s interval

    runs.clear()
    await asyncio.wait_for(watch_loop(sync_once_quiet(runs, loop), tmp_path, interval=0.2, debounce_ms=50, rounds=3),
                           timeout=20)
    assert len(runs) == 3  # nothing changed: the interval alone brings the next syncs


def sync_once_quiet(runs, loop):
    async def sync_once():
        runs.append(loop.time())
    return sync_once


def test_own_state_and_hidden_files_do_not_count(tmp_path):
    check = interesting(tmp_path)
    assert check(None, str(tmp_path / "tracks" / "a.gpx"))
    assert not check(None, str(tmp_path / ".osmcloud" / "state.db"))
    assert not check(None, str(tmp_path / "tracks" / ".osmcloud-partial-abc"))
    assert not check(None, "/elsewhere/x")
