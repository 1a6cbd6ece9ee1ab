"""Service-layer tests of files' reactions to other services' events on fakes (files_fakes.py):
trash-item-purged (trash_reactions.py) — a batch, its redelivery, and a process dying at each
point the crash-order comment of `items_purged` names —, grace-period-ended (grace.py),
billing's entitlement events (handlers.py) and account-deleted (account_deletion.py). The
handlers are called as the Runtime would call them, with the events it would deliver."""

import copy
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from files_fakes import PRO, START, Crash, CrashPlan, MemoryCollection, World, body

from osmcloud_common.events import (
    Entitlement,
    Event,
    GracePeriodEnded,
    SubscriptionActivated,
    TrashItemPurged,
    make_event,
)
from osmcloud_common.outbox import OUTBOX_FIELD
from osmcloud_files.account_deletion import AccountErasure
from osmcloud_files.domain import FileRef, blob_key, parse_file_ref
from osmcloud_files.model import Head
from osmcloud_files.storage_rule import version_cost
from osmcloud_files.uploads import UploadRequest

A, B, KEPT = (parse_file_ref("u", "GPX", n) for n in ("a.gpx", "b.gpx", "kept.gpx"))
C = parse_file_ref("w", "GPX", "c.gpx")


async def put(world: World, ref: FileRef, size: int) -> Head:
    head, _ = await world.process().uploader.upload(UploadRequest(ref, "dev", body(b"x" * size), size,
                                                                  overwrite=True))
    return head


async def delete(world: World, ref: FileRef) -> Head:
    return await world.process().ops.delete_file(ref, None, "dev", None)


def delivered(world: World, payload: Any, user_id: str, producer: str) -> Event:
    return make_event(payload, user_id=user_id, producer=producer, occurred_at=world.clock.now())


def purged(world: World, ref: FileRef, marker: Head) -> Event:
    return delivered(world, TrashItemPurged(file_type=ref.file_type, name=ref.name,
                                            tombstone_version_id=marker.version_id, reason="expired"),
                     ref.user_id, "trash")


def outbox(collection: MemoryCollection) -> list[dict[str, Any]]:
    """Every event recorded in the collection's documents, decoded."""
    return [json.loads(e["value"]) for doc in collection.docs.values() for e in doc.get(OUTBOX_FIELD, [])]


@dataclass
class Purge:
    """A world where trash purges three files in one batch: u's a.gpx (two versions and its
    marker), u's b.gpx (deleted, then uploaded again: its newer version stays) and w's c.gpx;
    u's kept.gpx is not in the trash."""
    world: World
    events: list[Event]
    victims: dict[str, set[str]]  # per user, the versions the batch removes
    markers: set[str]
    survivors: set[str]  # the versions of u's files left afterwards
    costs: dict[str, int]  # what each removed version counts toward stored bytes
    stored_after: dict[str, int]  # per user, stored_bytes once the batch is applied

    def pruned_ids(self) -> dict[str, list[str]]:
        """Per user, the version ids the recorded file-versions-pruned events name (with repeats)."""
        ids: dict[str, list[str]] = {}
        for event in outbox(self.world.prunes):
            assert event["type"] == "file-versions-pruned"
            ids.setdefault(event["user_id"], []).extend(event["data"]["version_ids"])
        return ids

    def assert_applied(self) -> None:
        world = self.world
        assert set(world.versions.docs) == self.survivors
        assert set(world.blobs.objects) == {blob_key("u", v) for v in self.survivors}
        assert set(world.heads.docs) == {B.key, KEPT.key}  # a.gpx and c.gpx were their markers
        assert {world.heads.docs[k]["head"]["version_id"] for k in (B.key, KEPT.key)} == self.survivors


async def purge_scenario() -> Purge:
    world = World()
    for user in ("u", "w"):
        await world.give_plan(user, PRO)
    a1, a2, ta = await put(world, A, 300), await put(world, A, 400), await delete(world, A)
    b1, tb, b2 = await put(world, B, 500), await delete(world, B), await put(world, B, 600)
    kept = await put(world, KEPT, 100)
    c1, tc = await put(world, C, 200), await delete(world, C)
    stored = {user: world.account(user)["stored_bytes"] for user in ("u", "w")}
    victims = {"u": [a1, a2, ta, b1, tb], "w": [c1, tc]}
    world.publisher.woken.clear()
    return Purge(world=world, events=[purged(world, A, ta), purged(world, B, tb), purged(world, C, tc)],
                 victims={user: {v.version_id for v in vs} for user, vs in victims.items()},
                 markers={ta.version_id, tb.version_id, tc.version_id},
                 survivors={b2.version_id, kept.version_id},
                 costs={v.version_id: version_cost(v.size) for vs in victims.values() for v in vs},
                 stored_after={user: stored[user] - sum(version_cost(v.size) for v in vs)
                               for user, vs in victims.items()})


# ---------------------------------------------------------------- trash-item-purged
async def test_a_purged_batch_removes_the_versions_up_to_each_marker_their_blobs_and_the_heads_still_at_it():
    p = await purge_scenario()
    await p.world.process().trash_reactions.items_purged(p.events)
    p.assert_applied()
    # one prune record per user, carrying its file-versions-pruned events; the relay woken for each
    assert sorted(doc["user_id"] for doc in p.world.prunes.docs.values()) == ["u", "w"]
    assert {user: sorted(ids) for user, ids in p.pruned_ids().items()} == {
        user: sorted(ids) for user, ids in p.victims.items()}
    assert sorted(p.world.publisher.woken) == sorted(f"prunes/{doc_id}" for doc_id in p.world.prunes.docs)
    # what the versions took is off the stored bytes (the live usage is the delete's business)
    assert {user: p.world.account(user)["stored_bytes"] for user in ("u", "w")} == p.stored_after


async def test_a_redelivered_purged_batch_changes_nothing_and_emits_nothing():
    p = await purge_scenario()
    await p.world.process().trash_reactions.items_purged(p.events)
    world = p.world
    collections = (world.versions, world.heads, world.accounts, world.prunes)
    before = copy.deepcopy([c.docs for c in collections])
    blobs, woken = dict(world.blobs.objects), len(world.publisher.woken)
    await world.process().trash_reactions.items_purged(p.events)
    for user, account in world.accounts.docs.items():  # only the listings' signal grows again (listing.py)
        assert account.pop("heads_purged") == before[2][user].pop("heads_purged") + 1
    assert [c.docs for c in collections] == before
    assert world.blobs.objects == blobs and len(world.publisher.woken) == woken


def at(collection: str, method: str, test: Any = None) -> CrashPlan:
    return CrashPlan(lambda c, m, args: c == collection and m == method and (test is None or test(args)))


def deleting_any_of(ids: set[str]) -> Any:
    return lambda args: bool(ids & set(args[0]["_id"]["$in"]))


@pytest.mark.parametrize("point", ["after the prune record", "after blobs and heads"])
async def test_a_crash_before_any_version_is_removed_then_redelivery_ends_as_one_delivery(point):
    p = await purge_scenario()
    world = p.world
    # the first write after the prune record is the blobs' deletion; after blobs and heads, the versions'
    plan = at("blobs", "delete_many") if point == "after the prune record" else at("versions", "delete_many")
    with pytest.raises(Crash):
        await world.process(plan).trash_reactions.items_purged(p.events)
    assert len(world.prunes.docs) == 2  # the events are recorded first
    assert p.victims["u"] <= set(world.versions.docs)  # every version is still there to be found again
    victim_blobs = {blob_key("u", v) for v in p.victims["u"] - p.markers}
    blobs_gone = point == "after blobs and heads"
    assert not victim_blobs & set(world.blobs.objects) if blobs_gone else victim_blobs <= set(world.blobs.objects)
    assert (A.key in world.heads.docs) is not blobs_gone
    await world.process().trash_reactions.items_purged(p.events)  # Kafka redelivers the batch
    p.assert_applied()
    assert len(world.prunes.docs) == 2  # found again, not recorded twice
    assert {user: sorted(ids) for user, ids in p.pruned_ids().items()} == {
        user: sorted(ids) for user, ids in p.victims.items()}
    assert {user: world.account(user)["stored_bytes"] for user in ("u", "w")} == p.stored_after


async def test_a_crash_before_the_markers_are_deleted_then_redelivery_removes_the_rest():
    p = await purge_scenario()
    world = p.world
    with pytest.raises(Crash):
        await world.process(at("versions", "delete_many", deleting_any_of(p.markers))).trash_reactions.items_purged(
            p.events)
    assert p.markers <= set(world.versions.docs)  # the markers, still there, let a redelivery find the batch
    assert not (p.victims["u"] - p.markers) & set(world.versions.docs)
    await world.process().trash_reactions.items_purged(p.events)
    p.assert_applied()
    # the redelivery prunes only the markers it found: their ids come once more (trash drops
    # an item already gone), every removed version was named
    pruned = p.pruned_ids()
    assert {user: set(ids) for user, ids in pruned.items()} == p.victims
    assert sorted(pruned["u"]) == sorted([*p.victims["u"], *(p.markers & p.victims["u"])])
    # the older versions' bytes were never taken off, as the ledger's documentation says a
    # crash between a removal and its decrement does: high, never low
    assert {user: world.account(user)["stored_bytes"] for user in ("u", "w")} == {
        user: p.stored_after[user] + sum(p.costs[v] for v in p.victims[user] - p.markers) for user in ("u", "w")}


# ---------------------------------------------------------------- billing's events
async def test_grace_end_stores_the_start_entitlement_and_trashes_what_lies_beyond_it_once():
    world = World()
    await world.give_plan("u", PRO)
    track = parse_file_ref("u", "GPX", "t.gpx")  # Start keeps no tracks
    await put(world, track, 300)
    favourites = [parse_file_ref("u", "FAVOURITES", f"f{i}.gpx") for i in range(3)]
    for ref in favourites:  # f0 the oldest
        world.clock.advance(timedelta(seconds=1))
        await put(world, ref, 400)
    start = Entitlement.model_validate({**START, "quota_bytes": 900})
    ended = delivered(world, GracePeriodEnded(entitlement=start), "u", "billing")
    await world.process().grace_end.grace_ended(ended)
    account = world.account("u")
    assert account["entitlement"] == start.model_dump()
    # the newest files that fit Start stay; the track (its type) and the oldest favourites
    # file (beyond the quota) get a delete marker each, marked as the grace end's
    trashed = {track.key, favourites[0].key}
    for ref in [track, *favourites]:
        head = world.heads.docs[ref.key]["head"]
        assert head["deleted"] == (ref.key in trashed)
        assert head.get("grace_end") is (True if ref.key in trashed else None)
        if ref.key in trashed:
            assert world.versions.docs[head["version_id"]]["grace_end"] is True
            assert world.events_in(world.heads, ref.key)[-1] == "file-deleted"
    assert (account["used_bytes"], account["file_count"]) == (800, 2)
    before = copy.deepcopy([world.versions.docs, world.heads.docs, world.accounts.docs])
    await world.process().grace_end.grace_ended(ended)  # redelivered: everything is within Start now
    assert [world.versions.docs, world.heads.docs, world.accounts.docs] == before


async def test_an_entitlement_event_stores_billings_word_and_an_older_one_does_not_override_it():
    world = World()
    pro = Entitlement.model_validate(PRO)
    newer = delivered(world, SubscriptionActivated(entitlement=pro), "u", "billing")
    older = newer.model_copy(update={"occurred_at": newer.occurred_at - timedelta(days=1),
                                     "data": SubscriptionActivated(entitlement=Entitlement.model_validate(START))
                                     .model_dump(mode="json")})
    handlers = world.process().entitlements
    await handlers.entitlement_changed(newer)
    await handlers.entitlement_changed(older)
    assert world.account("u")["entitlement"] == pro.model_dump()


# ---------------------------------------------------------------- account-deleted
async def test_account_erasure_removes_the_users_blobs_before_its_documents_and_no_one_elses():
    world = World()
    for user in ("u", "w"):
        await world.give_plan(user, PRO)
    await put(world, A, 300)
    kept = await put(world, C, 200)
    seen: list[set[str]] = []

    async def erase_documents(user_id: str) -> None:  # the Runtime's sweep of every collection
        seen.append(set(world.blobs.objects))
        for collection in (world.heads, world.versions, world.accounts):
            await collection.delete_many({"user_id": user_id})

    erasure = AccountErasure(world.process().blobs, erase_documents)
    await erasure.erase("u")
    assert seen == [{blob_key("w", kept.version_id)}]  # u's blobs were gone when the documents went
    assert set(world.heads.docs) == {C.key} and set(world.accounts.docs) == {"w"}
    await erasure.erase("u")  # again: nothing left to remove
    assert set(world.blobs.objects) == {blob_key("w", kept.version_id)}
