"""The files store's less common queries on the stack's real database server (our FerretDB
build locally, MongoDB in the compose mode): what the fakes of the service tests assume of
the server holds there too. Each test works in a scratch database of its own, dropped after."""

import uuid

import pytest
from pymongo import AsyncMongoClient, monitoring

from osmcloud_files.ledger import Ledger
from osmcloud_files.store import FilesStore


@pytest.fixture
async def store(stack):
    client = AsyncMongoClient(stack.mongo_url, tz_aware=True)
    name = f"store_test_{uuid.uuid4().hex[:12]}"
    db = client[name]
    store = FilesStore(db["heads"], db["versions"], db["accounts"])
    yield store
    await client.drop_database(name)
    await client.close()


def head_doc(key: str, version_id: str, pending_ops: list[str]) -> dict:
    user_id, file_type, name = key.split("/")
    return {"_id": key, "user_id": user_id, "type": file_type, "name": name, "category": "tracks",
            "head": {"version_id": version_id, "deleted": True, "size": -1},
            "_usage_pending": [{"op": op, "bytes": -10, "files": -1, "stored": 256} for op in pending_ops]}


async def test_a_purged_marker_that_carries_an_unsettled_delete_keeps_its_document_without_a_head(store):
    """trash-item-purged (trash_reactions.py): heads still at their marker go, but one whose
    pending usage names an operation in flight stays with no head for the reconciler; a head
    that moved on stays as it is."""
    await store.heads.insert_many([
        head_doc("u/GPX/settled.gpx", "m1", ["finished-op"]),
        head_doc("u/GPX/unsettled.gpx", "m2", ["finished-op", "dead-op"]),
        head_doc("u/GPX/moved.gpx", "m4", ["dead-op"]),
    ])
    pairs = [("u/GPX/settled.gpx", "m1"), ("u/GPX/unsettled.gpx", "m2"), ("u/GPX/moved.gpx", "m3")]
    assert await store.delete_heads_still_at(pairs, frozenset({"dead-op", "other-op"})) == 1
    left = {d["_id"]: d async for d in store.heads.find({})}
    assert sorted(left) == ["u/GPX/moved.gpx", "u/GPX/unsettled.gpx"]
    assert left["u/GPX/unsettled.gpx"]["head"] is None
    assert [e["op"] for e in left["u/GPX/unsettled.gpx"]["_usage_pending"]] == ["finished-op", "dead-op"]
    assert left["u/GPX/moved.gpx"]["head"]["version_id"] == "m4"
    assert sorted(h["_id"] for h in await store.heads_with_pending("u", "dead-op")) == sorted(left)


async def test_the_operations_in_flight_of_some_accounts_in_one_query(store):
    ledger = Ledger(store.accounts)
    await store.accounts.insert_many([
        {"_id": "a", "ops": {"op1": {"kind": "delete"}, "op2": {"kind": "upload"}}, "op_count": 2},
        {"_id": "b", "ops": {}, "op_count": 0},
        {"_id": "c", "ops": {"op3": {"kind": "delete"}}, "op_count": 1},
    ])
    assert await ledger.operations_of(["a", "b"]) == {"op1", "op2"}
    assert await ledger.operations_of(["b", "nobody"]) == frozenset()


def version_doc(user_id: str, seq: int, **fields) -> dict:
    from datetime import UTC, datetime

    from osmcloud_files.model import Head, Version
    head = Head(f"{user_id}-v{seq}", 1, None, seq, None, "d", deleted=False, seq=seq)
    return {**Version(user_id, "GPX", f"f{seq % 7}.gpx", head, None, "op", datetime(2026, 1, 1, tzinfo=UTC)).to_doc(),
            **fields}


async def test_a_window_of_the_feed_is_every_version_numbered_in_it_across_blocks_and_no_other(store):
    """The feed reads (after, upto] by its feed blocks (feed_blocks.py): a window that starts
    or ends inside a block, or spans several, brings exactly its versions, in order; another
    account's versions with the same numbers stay out."""
    await store.versions.insert_many([version_doc("u", s) for s in (*range(1, 250), 260, 399, 400, 401)]
                                     + [version_doc("other", s) for s in range(95, 105)])
    for after, upto in ((0, 0), (0, 99), (99, 100), (95, 105), (0, 1000), (150, 399), (399, 401), (401, 500)):
        got = [v["seq"] for v in await store.versions_after("u", after, upto)]
        assert got == [s for s in (*range(1, 250), 260, 399, 400, 401) if after < s <= upto], (after, upto)


async def test_documents_written_before_feed_blocks_get_theirs_once(store):
    """A store written before feed blocks: add_feed_blocks gives each version its seq_block
    and each head its changed_block, after which the feed finds them; a version without a
    change number gets none and is not read again."""
    old = [version_doc("u", s) for s in (5, 150)]
    for doc in old:
        del doc["seq_block"]
    await store.versions.insert_many([*old, {"_id": "no-seq", "user_id": "u", "seq": None}])
    await store.heads.insert_one({**head_doc("u/GPX/a.gpx", "v7", []), "reverted": True, "changed_seq": 120})
    assert await store.versions_after("u", 0, 200) == []
    assert await store.add_feed_blocks(batch=1) == 4
    assert [v["seq"] for v in await store.versions_after("u", 0, 200)] == [5, 150]
    assert [h["changed_seq"] for h in await store.reverted_heads_after("u", 100, 200)] == [120]
    assert await store.add_feed_blocks() == 0


class CommandNames(monitoring.CommandListener):
    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_feed_window_and_the_listing_come_in_one_round_trip_with_the_fields_the_views_show(stack):
    """The feed's window and the listing read without the fields their views do not show, a
    window in one command whatever its size (the server's default first batch is 101
    documents, then a getMore), the listing in batches of LISTING_BATCH."""
    from osmcloud_files.views import change_view, head_view
    commands = CommandNames()
    client = AsyncMongoClient(stack.mongo_url, tz_aware=True, event_listeners=[commands])
    name = f"store_test_{uuid.uuid4().hex[:12]}"
    db = client[name]
    store = FilesStore(db["heads"], db["versions"], db["accounts"])
    try:
        await store.versions.insert_many([version_doc("u", s, device_num=3) for s in range(1, 301)])
        await store.heads.insert_many([
            {**head_doc(f"u/GPX/f{i}.gpx", f"v{i}", ["op"]), "changed_seq": i, "changed_block": "0", "reverted": False,
             "head": {"version_id": f"v{i}", "size": 4, "checksum": None, "updated_ms": 2**40 + i, "client_ms": 7,
                      "device_id": "d", "deleted": i % 10 == 0, "seq": i}} for i in range(250)])
        commands.names.clear()
        window = await store.versions_after("u", 0, 299)
        listed = await store.listed_heads("u", None)
        assert commands.names == ["find", "find"]
        assert [v["seq"] for v in window] == list(range(1, 300)) and len(listed) == 225
        assert set(window[0]) == {"_id", "type", "name", "size", "checksum", "updated_ms", "client_ms", "device_id",
                                  "deleted", "seq"}
        assert set(listed[0]) == {"type", "name", "category", "head"}
        entry, view = change_view(window[0]), head_view(listed[0])
        assert (entry["version_id"], entry["kind"], entry["seq"]) == ("u-v1", "uploaded", 1)
        assert view["updatetime"] == 2**40 + int(listed[0]["name"][1:-4]) and type(view["updatetime"]) is int
    finally:
        await client.drop_database(name)
        await client.close()
