"""One page of the changes feed: the entries after a cursor's change number, read in windows
of change numbers (feed_blocks.py), cut at the page's limit."""

from dataclasses import dataclass
from typing import Any

from .feed_blocks import window_end
from .store import FilesStore
from .views import change_view, head_view

WINDOW_READS = 4  # reads of the feed per call at most (each window twice the last)


@dataclass(frozen=True)
class FeedPage:
    entries: list[dict[str, Any]]
    upto: int  # the page's cursor: every change numbered up to it is in this page or an earlier one
    more: bool


async def feed_page(store: FilesStore, user_id: str, after: int, horizon: int, limit: int) -> FeedPage:
    """At most `limit` entries numbered after `after` and up to `horizon`, in order. `more`:
    there may be more after the page (call again at once); a page may then hold fewer than
    `limit` entries (its windows were sparse, or its first window ended at a block's end)."""
    entries, upto = await _windows(store, user_id, after, horizon, limit)
    more = len(entries) > limit or upto < horizon
    if len(entries) > limit:
        entries, upto = entries[:limit], entries[limit - 1]["seq"]
    return FeedPage(entries, max(upto, after), more)


async def _windows(store: FilesStore, user_id: str, after: int, horizon: int, limit: int
                   ) -> tuple[list[dict[str, Any]], int]:
    """The entries numbered in (after, upto], in order, and `upto`. The first window holds
    about `limit` numbers and ends at a feed block's end (window_end), so that a read decodes
    no document it does not return; while the windows read hold fewer entries than the first
    one's numbers and the horizon is not reached, a next one twice as wide is read (at most
    WINDOW_READS reads) — numbers without an entry (a version removed for good, an operation
    that failed) make windows sparse. Each read costs about the entries it brings: the store
    reads a window by its feed blocks.

    A change number is drawn for one change: a version, or a head changed without a new
    version (`reverted`: its newest version removed for good). A window whose every number
    has a version holds no such head change, so heads are read only for windows with numbers
    left without a version."""
    entries: list[dict[str, Any]] = []
    upto, width, full = after, limit, limit
    for read in range(WINDOW_READS):
        if len(entries) >= full or upto >= horizon:
            break
        start, upto = upto, min(horizon, window_end(upto, width))
        if read == 0:
            full = upto - after
        versions = await store.versions_after(user_id, start, upto)
        entries += [change_view(v) for v in versions]
        if len({v["seq"] for v in versions}) < upto - start:
            heads = await store.reverted_heads_after(user_id, start, upto)
            if heads:
                entries += [{"seq": h["changed_seq"], "kind": "head_changed", "type": h["type"], "name": h["name"],
                             "head": head_view(h) if h.get("head") else None} for h in heads]
                entries.sort(key=lambda e: e["seq"])
        width *= 2
    return entries, upto
