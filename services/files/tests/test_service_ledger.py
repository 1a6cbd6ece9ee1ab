"""The usage ledger on the fakes: reservations within the quota and the file count, one
atomic decision per begin, settlements that happen once, and the changes feed's floor."""

import asyncio

from files_fakes import PRO, World

from osmcloud_files.domain import feed_horizon
from osmcloud_files.model import NO_USAGE, Usage


async def ledger_of(world: World, entitlement: dict = PRO):
    await world.give_plan("u", entitlement)
    return world.process().ledger


async def test_reservations_never_pass_the_quota_even_when_they_race():
    world = World()
    ledger = await ledger_of(world)
    began = await asyncio.gather(*(ledger.begin("u", f"op{i}", {"kind": "upload"}, quota=10_000, max_files=None,
                                                 bytes_=3000, files=1) for i in range(5)))
    assert sum(b is not None for b in began) == 3  # 3 x 3000 fit in 10 000, a fourth does not
    account = world.account("u")
    assert (account["committed_bytes"], account["reserved_bytes"], account["op_count"]) == (9000, 9000, 3)


async def test_a_reservation_is_checked_against_the_quota_it_was_decided_on():
    world = World()
    ledger = await ledger_of(world)
    # the caller read a quota of 20 000; the plan says 10 000 now: refused, not over-reserved
    assert await ledger.begin("u", "op", {"kind": "upload"}, quota=20_000, max_files=None,
                              bytes_=15_000, files=1) is None


async def test_the_file_count_is_a_limit_too():
    world = World()
    ledger = await ledger_of(world, {**PRO, "max_files": 1})
    assert await ledger.begin("u", "a", {}, quota=10_000, max_files=1, bytes_=1, files=1) is not None
    assert await ledger.begin("u", "b", {}, quota=10_000, max_files=1, bytes_=1, files=1) is None


async def test_a_settlement_happens_once_and_records_the_new_figures_with_its_event():
    world = World()
    ledger = await ledger_of(world)
    services = world.process()
    await ledger.begin("u", "op", {"kind": "upload"}, quota=10_000, max_files=None, bytes_=500, files=1)
    after = await ledger.finish("u", "op", Usage(500, 1), Usage(450, 1, 706),
                                usage_event=services.ops.usage_event("u"))
    assert after is not None and (after["used_bytes"], after["file_count"], after["stored_bytes"]) == (450, 1, 706)
    assert (after["committed_bytes"], after["reserved_bytes"], after["usage_seq"]) == (450, 0, 1)
    assert world.events_in(world.accounts, "u") == ["storage-usage-changed"]
    # a second finisher (the reconciler after an expiry) finds nothing to do
    again = await ledger.finish("u", "op", Usage(500, 1), Usage(450, 1), usage_event=services.ops.usage_event("u"))
    assert again is None
    assert world.account("u")["used_bytes"] == 450 and len(world.events_in(world.accounts, "u")) == 1


async def test_an_operation_expires_unless_renewed_and_an_expired_one_cannot_draw_a_number():
    world = World()
    ledger = await ledger_of(world)
    await ledger.begin("u", "op", {"kind": "upload"}, quota=10_000, max_files=None, bytes_=0, files=0)
    assert await ledger.renew("u", "op")
    world.later()
    assert not await ledger.renew("u", "op")
    assert await ledger.draw("u", "op", floor=0) is None


async def test_the_feed_stops_below_a_change_number_still_being_written():
    world = World()
    ledger = await ledger_of(world)
    first = await ledger.begin("u", "a", {}, quota=0, max_files=None, bytes_=0, files=0, floor=0)
    second = await ledger.begin("u", "b", {}, quota=0, max_files=None, bytes_=0, files=0, floor=first["change_seq"])
    assert (first["change_seq"], second["change_seq"]) == (1, 2)
    await ledger.finish("u", "b", NO_USAGE)
    account = world.account("u")
    floors = [op["floor"] for op in account["ops"].values() if op.get("floor") is not None]
    assert feed_horizon(account["change_seq"], floors) == 0  # "a" (number 1) is not finished
