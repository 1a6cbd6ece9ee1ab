"""Service-layer tests of the changes feed's paging (feed.py) on the fake collections: every
change once and in order whatever the limit and the gaps, whole feed blocks read, and heads
read only for windows with numbers left without a version."""

import itertools
import random
from datetime import UTC, datetime
from typing import Any

from files_fakes import World

from osmcloud_files.feed import feed_page
from osmcloud_files.feed_blocks import feed_block
from osmcloud_files.model import Head, Version
from osmcloud_files.store import FEED_READ_PARTS, FilesStore


class RecordingStore(FilesStore):
    """The real store over the fakes, recording the windows the feed reads."""

    def __init__(self, world: World) -> None:
        super().__init__(world.heads, world.versions, world.accounts)
        self.version_reads: list[tuple[int, int]] = []
        self.head_reads: list[tuple[int, int]] = []

    async def versions_after(self, user_id: str, after: int, upto: int) -> list[dict[str, Any]]:
        self.version_reads.append((after, upto))
        return await super().versions_after(user_id, after, upto)

    async def reverted_heads_after(self, user_id: str, after: int, upto: int) -> list[dict[str, Any]]:
        self.head_reads.append((after, upto))
        return await super().reverted_heads_after(user_id, after, upto)


def add_version(world: World, seq: int, name: str = "f.gpx") -> None:
    head = Head(f"v{seq}", 10, None, 1000 + seq, None, "d", deleted=False, seq=seq)
    doc = Version("u", "GPX", name, head, None, "op", datetime(2026, 1, 1, tzinfo=UTC)).to_doc()
    world.versions.docs[doc["_id"]] = doc


def add_reverted_head(world: World, seq: int) -> None:
    """A file whose newest version was removed for good by the change numbered `seq`."""
    name = f"reverted-{seq}.gpx"
    world.heads.docs[f"u/GPX/{name}"] = {
        "_id": f"u/GPX/{name}", "user_id": "u", "type": "GPX", "name": name, "category": "my_places",
        "head": {"version_id": f"old-{seq}", "size": 3, "checksum": None, "updated_ms": 5, "client_ms": None,
                 "device_id": "d", "deleted": False, "seq": 1},
        "reverted": True, "changed_seq": seq, "changed_block": feed_block(seq), "_usage_pending": []}


async def page_all(store: FilesStore, horizon: int, limit: int) -> tuple[list[int], int]:
    """Every entry's number from cursor 0, page by page; and the number of pages."""
    after, seen, pages = 0, [], 0
    while True:
        page = await feed_page(store, "u", after, horizon, limit)
        pages += 1
        assert len(page.entries) <= limit
        seen += [e["seq"] for e in page.entries]
        assert page.upto >= after
        after = page.upto
        if not page.more:
            return seen, pages
        assert pages < 10_000


async def test_a_dense_feed_is_read_in_whole_blocks_and_reads_no_heads():
    world = World()
    for seq in range(1, 1001):
        add_version(world, seq)
    store = RecordingStore(world)
    seen, pages = await page_all(store, 1000, 200)
    assert seen == list(range(1, 1001)) and pages == 6  # 199, then 200 a page: a window ends at a block's end
    assert len(store.version_reads) == pages  # one read a page: a full window is a full page
    assert store.version_reads[0] == (0, 199) and all(
        after % 100 == 99 and upto % 100 == 99 for after, upto in store.version_reads[1:-1])
    assert store.head_reads == []  # every number of every window had its version


async def test_a_wide_window_read_in_parts_brings_every_version_once_in_order():
    world = World()
    for seq in (*range(1, 640), *range(650, 1400)):
        add_version(world, seq)
    page = await feed_page(RecordingStore(world), "u", 0, 1399, 1000)
    assert [e["seq"] for e in page.entries] == [*range(1, 640), *range(650, 1011)] and page.more


class PartsStore(RecordingStore):
    """Records the parts one window is read in."""

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.parts: list[tuple[int, int]] = []

    async def _versions_in(self, user_id: str, after: int, upto: int) -> list[dict[str, Any]]:
        self.parts.append((after, upto))
        return await super()._versions_in(user_id, after, upto)


async def test_windows_of_any_width_and_start_are_read_in_whole_block_parts_that_tile_them():
    world = World()
    for seq in range(1, 2101):
        add_version(world, seq)
    store = PartsStore(world)
    for after, upto in ((0, 1000), (150, 550), (99, 1099), (37, 2100), (1000, 1399), (5, 205)):
        store.parts.clear()
        versions = await store.versions_after("u", after, upto)
        assert [v["seq"] for v in versions] == list(range(after + 1, upto + 1)), (after, upto)
        assert store.parts[0][0] == after and store.parts[-1][1] == upto
        assert all(a[1] == b[0] for a, b in itertools.pairwise(store.parts)), store.parts  # no gap, no overlap
        assert all(high % 100 == 99 for _, high in store.parts[:-1])  # inner cuts at a block's end
        assert len(store.parts) == max(1, min(FEED_READ_PARTS, (upto - after) // 200)), (after, upto, store.parts)


async def test_a_head_change_is_found_in_a_window_with_a_number_left_without_a_version():
    world = World()
    for seq in (*range(1, 150), *range(151, 300)):
        add_version(world, seq)
    add_reverted_head(world, 150)
    store = RecordingStore(world)
    page = await feed_page(store, "u", 0, 299, 200)
    assert [e["seq"] for e in page.entries] == list(range(1, 200)) and page.more and page.upto == 199
    change = page.entries[149]
    assert (change["kind"], change["name"], change["head"]["version_id"]) == (
        "head_changed", "reverted-150.gpx", "old-150")
    assert store.head_reads == [(0, 199)]
    rest = await feed_page(store, "u", 199, 299, 200)
    assert [e["seq"] for e in rest.entries] == list(range(200, 300)) and not rest.more
    assert store.head_reads == [(0, 199)]  # (199, 299] has a version for every number


class NumberedStore:
    """The two reads of the feed over documents kept by change number (the fake collections
    scan every document per query: too slow for thousands of pages)."""

    def __init__(self, world: World) -> None:
        self.versions = {d["seq"]: d for d in world.versions.docs.values()}
        self.heads = {d["changed_seq"]: d for d in world.heads.docs.values() if d.get("reverted")}

    async def versions_after(self, user_id: str, after: int, upto: int) -> list[dict[str, Any]]:
        return [self.versions[s] for s in range(after + 1, upto + 1) if s in self.versions]

    async def reverted_heads_after(self, user_id: str, after: int, upto: int) -> list[dict[str, Any]]:
        return [self.heads[s] for s in range(after + 1, upto + 1) if s in self.heads]


async def test_every_change_comes_once_and_in_order_whatever_the_limit_and_the_gaps():
    rng = random.Random(5)
    world = World()
    entries = []
    for seq in range(1, 3001):
        roll = rng.random()
        if 2000 < seq < 2500:  # a long stretch of numbers without a change
            continue
        if roll < 0.6 or 1200 < seq < 1300:  # a stretch without gaps
            add_version(world, seq, f"f{seq % 37}.gpx")
            entries.append(seq)
        elif roll < 0.65:
            add_reverted_head(world, seq)
            entries.append(seq)
        # else: a number without a change (a version removed for good, a failed operation)
    store = NumberedStore(world)
    for limit in (1, 7, 100, 150, 200, 1000):
        seen, _ = await page_all(store, 3000, limit)  # type: ignore[arg-type]
        assert seen == entries, limit


async def test_a_page_stops_at_the_horizon_and_a_cut_page_ends_at_its_last_entry():
    world = World()
    for seq in range(1, 501):
        add_version(world, seq)
    store = RecordingStore(world)
    page = await feed_page(store, "u", 0, 120, 200)
    assert [e["seq"] for e in page.entries] == list(range(1, 121)) and page.upto == 120 and not page.more
    cut = await feed_page(store, "u", 0, 500, 50)
    assert [e["seq"] for e in cut.entries] == list(range(1, 51)) and cut.upto == 50 and cut.more
    assert (await feed_page(store, "u", 500, 500, 200)).entries == []
