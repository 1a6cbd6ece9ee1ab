"""Service-layer tests of the listing (listing.py) on the fakes: what a process answers from
its snapshot and catch-up reads is, after every kind of change made by any process, what a
full read of the heads gives — and a catch-up is what it does, not a full read each time."""

import random

import pytest
from files_fakes import PRO, World, body

from osmcloud_common.events import TrashItemPurged, make_event
from osmcloud_files import listing
from osmcloud_files.domain import parse_file_ref
from osmcloud_files.listing import CATCH_UP_NUMBERS, Entry, ListingCache, Listings, Snapshot, listing_json
from osmcloud_files.uploads import UploadRequest
from osmcloud_files.views import head_view


async def upload(world: World, name: str, data: bytes, file_type: str = "GPX") -> None:
    ref = parse_file_ref("u", file_type, name)
    await world.process().uploader.upload(UploadRequest(ref, "dev", body(data), len(data), overwrite=True))


async def truth(world: World, types: list[str] | None = None) -> bytes:
    """The listing as a full read of the heads gives it, encoded as the answer is."""
    heads = await world.process().store.listed_heads("u", types)
    return listing_json([Entry(h["type"], h["head"]["size"], head_json(h)) for h in heads])


def head_json(doc: dict) -> bytes:
    import pydantic_core
    return pydantic_core.to_json(head_view(doc))


async def listed(listings: Listings, types: list[str] | None = None) -> bytes:
    return listing_json(await listings.live_files("u", types))


def listings_of(world: World, max_files: int = 10_000) -> Listings:
    return Listings(world.process().store, ListingCache(max_files))


async def listed_once(*names: str) -> tuple[World, Listings]:
    """A world whose account holds these GPX files (each name's bytes its own name), and a
    process that has listed them once (its snapshot taken)."""
    world = World()
    await world.give_plan("u", PRO)
    for name in names:
        await upload(world, name, name.encode())
    mine = listings_of(world)
    await listed(mine)
    return world, mine


async def purge(world: World, name: str, file_type: str = "GPX") -> None:
    """The trash's purge of a trashed file: its head document and versions go, without a change number."""
    marker = world.heads.docs[parse_file_ref("u", file_type, name).key]["head"]
    await world.process().trash_reactions.items_purged([make_event(
        TrashItemPurged(file_type=file_type, name=name, tombstone_version_id=marker["version_id"], reason="emptied"),
        user_id="u", producer="trash", occurred_at=world.clock.now())])


async def test_a_second_listing_catches_up_with_each_kind_of_change_made_by_another_process():
    world = World()
    await world.give_plan("u", PRO)
    for i in range(5):
        await upload(world, f"t{i}.gpx", b"x" * (10 + i))
    mine = listings_of(world)
    assert await listed(mine) == await truth(world) and mine.full_reads == 1

    await upload(world, "t0.gpx", b"new version")                                   # a new version
    await upload(world, "new.gpx", b"a new file")                                   # a new file
    await world.process().ops.delete_file(parse_file_ref("u", "GPX", "t1.gpx"), None, "dev", None)  # to the trash
    t2 = parse_file_ref("u", "GPX", "t2.gpx")
    newest = world.heads.docs[t2.key]["head"]["version_id"]
    await world.process().ops.remove_version(t2, newest)                            # its only version, for good
    assert await listed(mine) == await truth(world)
    names = [e["name"] for e in __import__("json").loads(await listed(mine))["files"]]
    assert names == ["new.gpx", "t0.gpx", "t3.gpx", "t4.gpx"]
    assert mine.full_reads == 1  # caught up, not read again


async def test_a_file_trashed_and_purged_between_two_listings_leaves_the_listing():
    """The purge deletes head documents without a change number; the account's heads_purged
    grows first, and the listing reads everything again."""
    world, mine = await listed_once("a.gpx", "b.gpx")
    await world.process().ops.delete_file(parse_file_ref("u", "GPX", "a.gpx"), None, "dev", None)
    await purge(world, "a.gpx")
    assert parse_file_ref("u", "GPX", "a.gpx").key not in world.heads.docs
    assert await listed(mine) == await truth(world)
    assert b"a.gpx" not in await listed(mine) and mine.full_reads == 2


async def test_delete_all_empties_the_listing():
    world, mine = await listed_once("a.gpx")
    services = world.process()
    await services.ledger.freeze("u", "op-all", {"kind": "delete-all"})
    await services.ops._delete_all("u", "op-all")
    assert await listed(mine) == b'{"files":[]}'
    await upload(world, "c.gpx", b"ccc")
    assert await listed(mine) == await truth(world) and b"c.gpx" in await listed(mine)


async def stuck_operation(world: World) -> None:
    """An upload that drew its change number and never went on (its process is gone, the
    reconciler has not come yet): the account has an operation in flight all along."""
    quota, floor = world.account("u")["entitlement"]["quota_bytes"], world.account("u")["change_seq"]
    began = await world.process().ledger.begin("u", "op-stuck", {"kind": "upload"}, quota=quota, max_files=None,
                                               bytes_=5, files=1, floor=floor)
    assert began is not None and began["ops"]["op-stuck"]["floor"] == floor


async def test_with_an_operation_in_flight_the_listing_still_catches_up_and_sees_a_purge():
    world, mine = await listed_once("a.gpx", "b.gpx")
    await stuck_operation(world)
    await upload(world, "c.gpx", b"ccc")
    assert await listed(mine) == await truth(world) and b"c.gpx" in await listed(mine) and mine.full_reads == 1
    await world.process().ops.delete_file(parse_file_ref("u", "GPX", "a.gpx"), None, "dev", None)
    await purge(world, "a.gpx")
    assert await listed(mine) == await truth(world) and b"a.gpx" not in await listed(mine)
    assert mine.full_reads == 2  # the purge: read whole once
    assert await listed(mine) == await truth(world) and mine.full_reads == 2


async def test_one_types_listing_reads_that_type_only_when_nothing_is_kept_and_filters_a_snapshot():
    world = World()
    await world.give_plan("u", PRO)
    await upload(world, "a.gpx", b"aaa")
    await upload(world, "f.xml", b"fff", file_type="FAVOURITES")
    mine = listings_of(world)
    assert await listed(mine, ["FAVOURITES"]) == await truth(world, ["FAVOURITES"])
    assert mine.full_reads == 0 and mine.cache.get("u") is None
    await listed(mine)
    assert await listed(mine, ["GPX"]) == await truth(world, ["GPX"]) and mine.full_reads == 1


async def test_a_catch_up_wider_than_its_bound_is_a_full_read():
    world, mine = await listed_once("a.gpx")
    world.accounts.docs["u"]["change_seq"] += CATCH_UP_NUMBERS + 1  # numbers drawn by failed operations
    assert await listed(mine) == await truth(world) and mine.full_reads == 2


@pytest.mark.parametrize("in_flight", [False, True])
async def test_random_changes_from_several_processes_always_list_as_a_full_read(in_flight: bool):
    """Uploads, new versions, deletes, removals for good and purges in random order, each
    followed by a listing from one of two processes: every answer is the full read's — also
    with an operation in flight all along (no count to compare)."""
    world = World()
    await world.give_plan("u", {"plan": "pro", "quota_bytes": 10_000_000})
    if in_flight:
        await stuck_operation(world)
    rng = random.Random(18)
    processes = [listings_of(world), listings_of(world)]
    names = [f"f{i}.gpx" for i in range(12)]
    for step in range(150):
        name = rng.choice(names)
        ref = parse_file_ref("u", "GPX", name)
        doc = world.heads.docs.get(ref.key)
        head = (doc or {}).get("head")
        action = rng.random()
        if head and not head["deleted"] and action < 0.25:
            await world.process().ops.delete_file(ref, None, "dev", None)
        elif head and head["deleted"] and action < 0.4:
            await purge(world, name)
        elif head and action < 0.5:
            await world.process().ops.remove_version(ref, head["version_id"])
        else:
            await upload(world, name, bytes([step % 250]) * rng.randint(1, 40))
        which = rng.choice(processes)
        assert await listed(which) == await truth(world), f"step {step}"
    assert sum(p.full_reads for p in processes) < 60  # most calls caught up


def test_the_cache_keeps_at_most_its_bound_least_recently_listed_out_first():
    cache = ListingCache(max_files=5)

    def snapshot(n: int) -> Snapshot:
        return Snapshot(0, 0, 0, {("GPX", f"{i}"): Entry("GPX", 1, b"{}") for i in range(n)})
    cache.put("a", snapshot(2))
    cache.put("b", snapshot(2))
    assert cache.get("a") is not None  # a listed last
    cache.put("c", snapshot(2))
    assert cache.get("b") is None and cache.get("a") is not None and cache.files_held == 4
    cache.put("big", snapshot(6))  # alone over the bound: not kept
    assert cache.get("big") is None and cache.files_held == 4
    grown = cache.get("a")
    assert grown is not None
    grown.entries.update(snapshot(3).entries)
    cache.put("a", grown)  # counted at its new size
    assert cache.files_held == 5


async def test_a_process_that_keeps_nothing_still_lists_from_the_saved_copy():
    world = World()
    await world.give_plan("u", PRO)
    await upload(world, "a.gpx", b"aaa")
    mine = listings_of(world, max_files=0)
    assert await listed(mine) == await truth(world)
    await upload(world, "b.gpx", b"bbb")
    assert await listed(mine) == await truth(world) and mine.full_reads == 1 and mine.cache.files_held == 0


# ---------------------------------------------------------------- the saved copy
async def test_a_restarted_process_or_another_replica_starts_from_the_saved_listing():
    world, first = await listed_once("a.gpx", "b.gpx")
    assert set(world.listings.docs) == {"u"} and world.listings.docs["u"]["user_id"] == "u"
    await upload(world, "c.gpx", b"ccc")
    another = listings_of(world)  # nothing in its memory
    assert await listed(another) == await truth(world) and another.full_reads == 0


async def test_every_call_from_a_fresh_process_lists_as_a_full_read():
    """Random changes, and each listing from a process that just started: what it answers from
    the saved copy and its catch-up is always the full read's."""
    world = World()
    await world.give_plan("u", {"plan": "pro", "quota_bytes": 10_000_000})
    rng = random.Random(7)
    names = [f"f{i}.gpx" for i in range(10)]
    full_reads = 0
    for step in range(120):
        name = rng.choice(names)
        ref = parse_file_ref("u", "GPX", name)
        head = (world.heads.docs.get(ref.key) or {}).get("head")
        if head and not head["deleted"] and rng.random() < 0.3:
            await world.process().ops.delete_file(ref, None, "dev", None)
        elif head and head["deleted"] and rng.random() < 0.3:
            await purge(world, name)
        else:
            await upload(world, name, bytes([step % 250]) * rng.randint(1, 40))
        fresh = listings_of(world)
        assert await listed(fresh) == await truth(world), f"step {step}"
        full_reads += fresh.full_reads
    assert full_reads < 40  # the first, and after each purge


async def test_delete_all_and_a_purge_take_the_saved_listing_with_them():
    world, _ = await listed_once("a.gpx", "b.gpx")
    await world.process().ops.delete_file(parse_file_ref("u", "GPX", "a.gpx"), None, "dev", None)
    await purge(world, "a.gpx")
    assert world.listings.docs == {}  # it named a.gpx
    await listed(listings_of(world))
    services = world.process()
    await services.ledger.freeze("u", "op-all", {"kind": "delete-all"})
    await services.ops._delete_all("u", "op-all")
    assert world.listings.docs == {}


async def test_an_unreadable_or_too_large_saved_listing_means_a_full_read(monkeypatch: pytest.MonkeyPatch):
    world, _ = await listed_once("a.gpx")
    world.listings.docs["u"]["data"] = b"not zlib"
    fresh = listings_of(world)
    assert await listed(fresh) == await truth(world) and fresh.full_reads == 1
    monkeypatch.setattr(listing, "SAVED_MAX_BYTES", 10)
    world.listings.docs.clear()
    await upload(world, "b.gpx", b"bbb")
    big = listings_of(world)
    assert await listed(big) == await truth(world) and big.full_reads == 1 and world.listings.docs == {}


@pytest.mark.parametrize("kept", [True, False])
async def test_the_storage_entries_carry_each_files_type_and_size(kept: bool):
    world = World()
    await world.give_plan("u", PRO)
    await upload(world, "a.gpx", b"a" * 7)
    await upload(world, "f.xml", b"f" * 3, file_type="FAVOURITES")
    mine = listings_of(world, max_files=10 if kept else 0)
    files = await mine.live_files("u")
    assert [(f.file_type, f.size) for f in files] == [("FAVOURITES", 3), ("GPX", 7)]


async def test_a_listing_taken_while_a_new_version_is_written_catches_that_version_up_later():
    """The snapshot taken during the upload holds the old version; the catch-up after it must
    read the number the upload drew (the horizon stays below an operation in flight)."""
    world, mine = await listed_once("a.gpx")
    during: list[bytes] = []
    source = body(b"the new version")

    async def read(n: int) -> bytes:
        if not during:
            during.append(await listed(mine))
        return await source(n)
    ref = parse_file_ref("u", "GPX", "a.gpx")
    await world.process().uploader.upload(UploadRequest(ref, "dev", read, 15, overwrite=True))
    assert during and b'"size":5' in during[0]  # the old version ("a.gpx"), while the new one streamed
    assert await listed(mine) == await truth(world) and b'"size":15' in await listed(mine)


async def test_an_erased_account_lists_nothing():
    """Account deletion erases the account's documents, its ledger with them: the change
    number starts again from 0, below the snapshot's."""
    world, mine = await listed_once("a.gpx")
    for collection in (world.heads, world.versions):
        collection.docs.clear()
    del world.accounts.docs["u"]
    assert await listed(mine) == b'{"files":[]}' and mine.full_reads == 2


async def test_a_head_gone_by_a_path_that_forgot_heads_purged_is_caught_by_the_count():
    """The last check: with no operation in flight, a listing holding more files than the
    account's settled count is read again whole (a future path deleting heads without growing
    heads_purged, or a document removed by hand)."""
    world, mine = await listed_once("a.gpx", "b.gpx")
    del world.heads.docs[parse_file_ref("u", "GPX", "a.gpx").key]
    world.accounts.docs["u"]["file_count"] -= 1
    assert await listed(mine) == await truth(world) and b"a.gpx" not in await listed(mine)
    assert mine.full_reads == 2


@pytest.mark.parametrize("meanwhile", ["delete-all", "erasure", "purge"])
async def test_a_copy_saved_after_a_deletion_began_is_not_left_behind(meanwhile: str):
    """A listing reads the heads, then "delete all", the account's erasure or a purge begins
    (each marks the account or removes it first, then drops the saved copy), then the listing
    saves what it read — naming files being deleted. The listing sees the mark and drops it."""
    world, _ = await listed_once("a.gpx")
    world.listings.docs.clear()
    store = world.process().store
    save = store.save_listing

    async def save_after_the_deletion_began(user_id: str, fields: dict) -> None:
        if meanwhile == "delete-all":
            await world.process().ledger.freeze("u", "op-all", {"kind": "delete-all"})
        elif meanwhile == "erasure":
            del world.accounts.docs["u"]
        else:
            world.accounts.docs["u"]["heads_purged"] = world.accounts.docs["u"].get("heads_purged", 0) + 1
        await save(user_id, fields)
    store.save_listing = save_after_the_deletion_began  # type: ignore[method-assign]
    fresh = Listings(store, ListingCache(100))
    await fresh.live_files("u")
    assert world.listings.docs == {}
