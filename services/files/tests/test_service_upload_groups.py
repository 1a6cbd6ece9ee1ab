"""Group commit of small single uploads (upload_groups.py) on the fakes: uploads of one account
that arrive while one of its batches is being written share the next batch (one ledger
operation), each keeping its own answer; a lone upload is written at once; larger bodies go
alone. A batch is held open by holding its first blob PUT."""

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import structlog
from files_fakes import START, CrashPlan, World, body, settled

from osmcloud_common.blobstore import StoredBlob
from osmcloud_files.bootstrap import FilesServices
from osmcloud_files.bulk_batch import SmallFile
from osmcloud_files.domain import parse_file_ref
from osmcloud_files.errors import QuotaExceeded, VersionConflict
from osmcloud_files.model import Head
from osmcloud_files.upload_groups import UploadGroups
from osmcloud_files.uploads import UploadRequest

PLAN = {**START, "quota_bytes": 50_000, "max_file_bytes": 20_000}


class Held:
    """Holds the first blob PUT (so its batch is being written) until `release()`;
    a later PUT of a body in `fail` fails."""

    def __init__(self, world: World) -> None:
        self.started, self.gate = asyncio.Event(), asyncio.Event()
        self.fail: set[str] = set()
        original = world.blobs.put_stream
        first = True

        async def put(key: str, read: Callable[[int], Awaitable[bytes]], limit: int | None = None,
                      content_type: str = "application/octet-stream") -> StoredBlob:
            nonlocal first
            if first:
                first = False
                self.started.set()
                await self.gate.wait()
            data = await read(1 << 20)
            if data in self.fail:
                raise OSError("S3 is away")
            return await original(key, body(data), limit, content_type)
        world.blobs.put_stream = put  # type: ignore[method-assign]

    async def batch_of(self, groups: UploadGroups, name: str, data: bytes) -> "asyncio.Task[Any]":
        """Starts an upload and returns once its batch is being written (its PUT held)."""
        task = asyncio.create_task(groups.upload(request(name, data)))
        await self.started.wait()
        return task

    def release(self) -> None:
        self.gate.set()


def batches_of(services: FilesServices) -> list[list[str]]:
    """Records the files of each batch the groups write."""
    seen: list[list[str]] = []
    original = services.batches.upload

    async def upload(user_id: str, files: list[SmallFile]) -> Any:
        seen.append([f.ref.name for f in files])
        return await original(user_id, files)
    services.batches.upload = upload  # type: ignore[method-assign]
    return seen


def request(name: str, data: bytes, **kw: Any) -> UploadRequest:
    return UploadRequest(parse_file_ref("u", "FAVOURITES", name), "dev", body(data), len(data), **kw)


async def queued(groups: UploadGroups, n: int) -> None:
    """Lets the upload tasks just started reach their account's queue (no time passes)."""
    for _ in range(100):
        queue = groups._queues.get("u")
        if queue is not None and len(queue.waiting) >= n:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{n} uploads did not reach the queue")


@pytest.fixture
async def world() -> World:
    world = World()
    await world.give_plan("u", PLAN)
    return world


async def test_uploads_arriving_while_a_batch_is_written_share_the_next_one(world: World) -> None:
    held = Held(world)
    services = world.process()
    seen = batches_of(services)
    groups = services.groups
    first = await held.batch_of(groups, "first.gpx", b"f" * 100)
    rest = [asyncio.create_task(groups.upload(request(f"{i}.gpx", bytes([i]) * (10 + i)))) for i in range(5)]
    await queued(groups, 5)
    held.release()
    answers = await asyncio.gather(first, *rest)

    assert seen == [["first.gpx"], ["0.gpx", "1.gpx", "2.gpx", "3.gpx", "4.gpx"]]
    heads = [head for head, _ in answers]
    assert len({h.version_id for h in heads}) == 6
    assert [h.size for h in heads] == [100, 10, 11, 12, 13, 14]
    for name, head in zip(["first.gpx"] + [f"{i}.gpx" for i in range(5)], heads, strict=True):
        stored = await services.store.head(parse_file_ref("u", "FAVOURITES", name))
        assert stored is not None and stored["head"]["version_id"] == head.version_id
    account = settled(world)
    assert account["used_bytes"] == 160 and account["file_count"] == 6
    # each answer's account already counts its own file (read-your-writes)
    assert answers[0][1]["file_count"] >= 1 and all(after["file_count"] == 6 for _, after in answers[1:])
    assert len(set(h.seq for h in heads)) == 6


async def test_a_lone_upload_is_written_at_once_as_a_batch_of_one(world: World) -> None:
    services = world.process()
    seen = batches_of(services)
    head, after = await services.groups.upload(request("a.gpx", b"a" * 10))
    assert seen == [["a.gpx"]] and head.size == 10 and after["file_count"] == 1
    assert list(world.blobs.objects.values()) == [b"a" * 10]


async def test_two_uploads_of_one_file_keep_their_order_in_separate_batches(world: World) -> None:
    held = Held(world)
    services = world.process()
    seen = batches_of(services)
    groups = services.groups
    first = await held.batch_of(groups, "other.gpx", b"o")
    second = asyncio.create_task(groups.upload(request("x.gpx", b"2" * 20, overwrite=True)))
    await queued(groups, 1)
    third = asyncio.create_task(groups.upload(request("x.gpx", b"3" * 30, overwrite=True)))
    fourth = asyncio.create_task(groups.upload(request("y.gpx", b"y" * 5)))
    await queued(groups, 3)
    held.release()
    (_, _), (h2, _), (h3, _), (_, _) = await asyncio.gather(first, second, third, fourth)
    assert seen == [["other.gpx"], ["x.gpx", "y.gpx"], ["x.gpx"]]
    stored = await services.store.head(parse_file_ref("u", "FAVOURITES", "x.gpx"))
    assert stored is not None and stored["head"]["version_id"] == h3.version_id and h3.seq > h2.seq
    assert settled(world)["used_bytes"] == 1 + 30 + 5


async def test_a_refusal_is_the_one_uploads_own_and_keeps_nothing_of_it(world: World) -> None:
    await world.give_plan("u", {**PLAN, "quota_bytes": 30_000})
    services = world.process()
    existing, _ = await services.groups.upload(request("home.gpx", b"h" * 100))
    held = Held(world)
    groups = services.groups
    first = await held.batch_of(groups, "first.gpx", b"f")
    conflict = asyncio.create_task(groups.upload(request("home.gpx", b"c" * 10)))  # exists: no base
    over = asyncio.create_task(groups.upload(request("big.gpx", b"b" * 19_000)))
    over2 = asyncio.create_task(groups.upload(request("big2.gpx", b"b" * 19_000)))
    based = asyncio.create_task(groups.upload(request("home.gpx", b"n" * 50, base=existing.version_id)))
    fine = asyncio.create_task(groups.upload(request("fine.gpx", b"g" * 10)))
    await queued(groups, 5)
    held.release()
    results = await asyncio.gather(first, conflict, over, over2, based, fine, return_exceptions=True)
    assert isinstance(results[1], VersionConflict)
    assert isinstance(results[3], QuotaExceeded)  # 100 + 1 + 19,000 + 19,000 > the quota of 30,000
    assert not any(isinstance(r, BaseException) for i, r in enumerate(results) if i not in (1, 3))
    account = settled(world)
    assert account["used_bytes"] == 1 + 19_000 + 50 + 10 and account["file_count"] == 4
    assert len(world.blobs.objects) == 5  # home's old and new version, first, big, fine: no blob of the refused


async def test_a_body_larger_than_a_small_file_goes_alone(world: World) -> None:
    services = world.process()
    seen = batches_of(services)
    groups = UploadGroups(services.uploader, services.batches, small=1000)
    head, _ = await groups.upload(request("large.gpx", b"l" * 1001))
    undeclared = UploadRequest(parse_file_ref("u", "FAVOURITES", "chunked.gpx"), "dev", body(b"c" * 5000, 700), None)
    head2, after = await groups.upload(undeclared)
    assert seen == [] and head.size == 1001 and head2.size == 5000 and after["file_count"] == 2
    assert b"c" * 5000 in world.blobs.objects.values()  # what was read ahead is stored with the rest
    settled(world)


async def test_an_upload_whose_request_left_before_its_batch_began_is_never_written(world: World) -> None:
    held = Held(world)
    services = world.process()
    seen = batches_of(services)
    groups = services.groups
    first = await held.batch_of(groups, "first.gpx", b"f")
    gone = asyncio.create_task(groups.upload(request("gone.gpx", b"g" * 10)))
    stays = asyncio.create_task(groups.upload(request("stays.gpx", b"s" * 10)))
    await queued(groups, 2)
    gone.cancel()
    held.release()
    await asyncio.gather(first, stays)
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert seen == [["first.gpx"], ["stays.gpx"]]
    assert await services.store.head(parse_file_ref("u", "FAVOURITES", "gone.gpx")) is None
    assert settled(world)["file_count"] == 2


async def test_a_failed_batch_is_every_uploads_failure_and_leaves_nothing(world: World) -> None:
    held = Held(world)
    held.fail.add(b"x" * 10)
    services = world.process()
    groups = services.groups
    first = await held.batch_of(groups, "first.gpx", b"f")
    failing = asyncio.create_task(groups.upload(request("x.gpx", b"x" * 10)))
    beside = asyncio.create_task(groups.upload(request("y.gpx", b"y" * 10)))
    await queued(groups, 2)
    held.release()
    results = await asyncio.gather(first, failing, beside, return_exceptions=True)
    assert isinstance(results[1], OSError) and isinstance(results[2], OSError)
    account = settled(world)
    assert account["file_count"] == 1 and account["used_bytes"] == 1
    assert await services.store.head(parse_file_ref("u", "FAVOURITES", "y.gpx")) is None


async def test_a_full_queue_sends_the_next_upload_alone(world: World) -> None:
    held = Held(world)
    services = world.process()
    seen = batches_of(services)
    groups = UploadGroups(services.uploader, services.batches, queued_bytes=100)
    first = await held.batch_of(groups, "first.gpx", b"f")
    waits = asyncio.create_task(groups.upload(request("waits.gpx", b"w" * 90)))
    await queued(groups, 1)
    alone, _ = await groups.upload(request("alone.gpx", b"a" * 20))  # 90 + 20 > 100: not queued
    assert alone.size == 20 and seen == [["first.gpx"]]
    held.release()
    await asyncio.gather(first, waits)
    assert seen == [["first.gpx"], ["waits.gpx"]] and settled(world)["file_count"] == 3


async def test_each_grouped_uploads_event_names_its_own_request(world: World) -> None:
    held = Held(world)
    services = world.process()
    groups = services.groups

    async def upload_as(request_id: str, name: str) -> Head:
        structlog.contextvars.bind_contextvars(request_id=request_id)  # as the HTTP middleware does
        head, _ = await groups.upload(request(name, b"e" * 10))
        return head
    first = asyncio.create_task(upload_as("req-first", "first.gpx"))
    await held.started.wait()
    others = [asyncio.create_task(upload_as(f"req-{i}", f"{i}.gpx")) for i in range(3)]
    await queued(groups, 3)
    held.release()
    await asyncio.gather(first, *others)
    for name, request_id in [("first.gpx", "req-first")] + [(f"{i}.gpx", f"req-{i}") for i in range(3)]:
        doc = world.heads.docs[parse_file_ref("u", "FAVOURITES", name).key]
        entry = doc["_outbox"][0]
        assert entry["request_id"] == request_id and json.loads(entry["value"])["type"] == "file-uploaded"


async def test_a_batch_of_many_uploads_costs_the_database_commands_of_one(world: World) -> None:
    calls: list[tuple[str, str]] = []
    services = world.process(CrashPlan(lambda c, m, _: calls.append((c, m)) is not None))  # records, never kills
    groups = services.groups
    await groups.upload(request("alone.gpx", b"a" * 10))
    one = list(calls)
    held = Held(world)
    calls.clear()
    first = await held.batch_of(groups, "first.gpx", b"f")
    rest = [asyncio.create_task(groups.upload(request(f"{i}.gpx", b"r" * 10))) for i in range(6)]
    await queued(groups, 6)
    held.release()
    await asyncio.gather(first, *rest)
    # two batches (one file, then six): twice the commands of the lone upload, none per file
    database = sorted(c for c in calls if c[0] != "blobs")
    assert database == sorted(2 * [c for c in one if c[0] != "blobs"])
    # per batch the account is read once (judging), begun and finished (no read of its own)
    assert sorted(c for c in one if c[0] == "accounts") == [
        ("accounts", "find_one"), ("accounts", "find_one_and_update"), ("accounts", "find_one_and_update")]
    assert settled(world)["file_count"] == 8
