"""The receiving side of a hand-over applies events as the Kafka consumer would."""

from datetime import UTC, datetime

import pytest

from osmcloud_common.errors import BadRequest
from osmcloud_common.events import Event, FileDeleted, FileUploaded, TrashItemPurged, make_event
from osmcloud_common.handover import apply_events, parse_events


class Processed:
    """In-memory stand-in for the processed_events collection."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    async def find_one(self, query, projection=None):
        return {"_id": query["_id"]} if query["_id"] in self.ids else None

    async def update_one(self, query, update, upsert=False):
        self.ids.add(query["_id"])

    def find(self, query, projection=None):
        found = [{"_id": i} for i in query["_id"]["$in"] if i in self.ids]

        class Cursor:
            async def to_list(self, length=None):
                return found
        return Cursor()

    async def insert_many(self, docs, ordered=True):
        self.ids.update(d["_id"] for d in docs)


def event(payload, user="u1") -> Event:
    return make_event(payload, user_id=user, producer="test", occurred_at=datetime(2026, 1, 1, tzinfo=UTC))


def deleted(name: str) -> FileDeleted:
    return FileDeleted(file_type="GPX", name=name, category="my_places", tombstone_version_id=f"t-{name}",
                       last_version_id="v", size=1, deleted_at=datetime(2026, 1, 1, tzinfo=UTC))


async def test_single_handlers_once_per_event_batches_in_runs_and_deleted_accounts_skipped():
    seen: list[str] = []

    async def on_deleted(e: Event) -> None:
        seen.append(f"deleted {e.payload().name}")

    async def on_purged(events: list[Event]) -> None:
        seen.append(f"purged {[e.payload().name for e in events]}")

    async def skip(e: Event) -> bool:
        return e.user_id == "gone"

    purged = [event(TrashItemPurged(file_type="GPX", name=n, tombstone_version_id="t", reason="deleted"))
              for n in ("a", "b")]
    first = event(deleted("x"))
    events = [first, *purged, event(deleted("y")), event(deleted("z"), user="gone"),
              event(FileUploaded(file_type="GPX", name="n", version_id="v", size=1, checksum="c",
                                 updated_at=datetime(2026, 1, 1, tzinfo=UTC)))]
    processed = Processed()
    applied = await apply_events(events, handlers={"file-deleted": on_deleted},
                                 batch_handlers={"trash-item-purged": on_purged}, processed=processed, skip=skip)
    assert seen == ["deleted x", "purged ['a', 'b']", "deleted y"] and applied == 4
    # the same events again (Kafka's delivery after the hand-over): skipped, batched ones too
    seen.clear()
    await apply_events([first, *purged], handlers={"file-deleted": on_deleted},
                       batch_handlers={"trash-item-purged": on_purged}, processed=processed, skip=skip)
    assert seen == []


def test_a_hand_over_body_is_a_list_of_envelopes():
    good = event(deleted("x"))
    assert parse_events({"events": [good.model_dump(mode="json")]})[0].id == good.id
    for bad in ([], {"events": "x"}, {"events": [{"type": "file-deleted"}]}, {"events": [{}] * 1001}):
        with pytest.raises(BadRequest):
            parse_events(bad)


async def test_a_lost_connection_is_tried_once_more_and_a_second_loss_falls_back_to_kafka():
    """The receiver drops the connection without answering (a pooled connection it had closed,
    a replica going away): the hand-over tries once more; twice lost, it reports failure."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from osmcloud_common.handover import Handover
    from osmcloud_common.outbox import outbox_entry

    calls: list[int] = []
    drops = {"left": 1}

    async def events(request: web.Request) -> web.Response:
        calls.append(len((await request.json())["events"]))
        if drops["left"] > 0:
            drops["left"] -= 1
            request.transport.close()  # no answer at all
        return web.json_response({"applied": calls[-1]})

    app = web.Application()
    app.router.add_post("/internal/events", events)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    handover = Handover("trash", str(server.make_url("")), "secret", 5.0)
    entries = [outbox_entry(event(deleted("x")), "t.")]
    try:
        assert await handover.deliver(entries) is True
        assert calls == [1, 1] and handover.failed == 0
        drops["left"] = 2
        assert await handover.deliver(entries) is False
        assert handover.failed == 1
    finally:
        await handover.close()
        await server.close()


async def test_two_deliveries_of_one_batch_never_run_side_by_side():
    """A hand-over and Kafka's delivery of the same purge batch at once: with the process's
    batch locks the second finds the events applied and skips them; without, both ran the
    handler interleaved (and files recorded two prune events for one purge)."""
    import asyncio

    from osmcloud_common.handover import BatchLocks

    async def deliver_twice(locks: BatchLocks | None) -> list[str]:
        trace: list[str] = []

        async def on_purged(events: list[Event]) -> None:
            trace.append("start")
            await asyncio.sleep(0.01)  # the handler's database round trips
            trace.append("end")

        async def skip(e: Event) -> bool:
            return False

        batch = [event(TrashItemPurged(file_type="GPX", name="a", tombstone_version_id="t", reason="deleted"))]
        processed = Processed()
        await asyncio.gather(*(apply_events(batch, handlers={}, batch_handlers={"trash-item-purged": on_purged},
                                            processed=processed, skip=skip, batch_locks=locks) for _ in range(2)))
        return trace

    assert await deliver_twice(BatchLocks()) == ["start", "end"]
    assert await deliver_twice(None) == ["start", "start", "end", "end"]  # what the locks prevent
