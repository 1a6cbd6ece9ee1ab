"""Bulk upload (POST /api/files/bulk) on the fakes: the route reads the multipart body part by
part (aiohttp's TestClient, the real reader), each file is judged on its own through the single
upload, and a refused file leaves nothing behind while the others are stored."""

import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from files_fakes import START, World, body, settled, trashed

from osmcloud_common.domain_errors import map_domain_errors
from osmcloud_common.http import create_app
from osmcloud_files.bulk import BulkUploads
from osmcloud_files.bulk_routes import BulkRoutes
from osmcloud_files.domain import parse_file_ref
from osmcloud_files.native_errors import api_error
from osmcloud_files.uploads import UploadRequest
from osmcloud_localstack.client import bulk_body

USER = {"X-User-Id": "u", "X-Device-Id": "dev", "X-Device-Num": "7"}
SMALL = {**START, "quota_bytes": 6_000, "max_file_bytes": 4_000}


async def client_for(world: World, max_files: int = 50) -> TestClient:  # type: ignore[type-arg]
    app = create_app("files")
    map_domain_errors(app, api_error)
    services = world.process()
    BulkRoutes(BulkUploads(services.uploader, max_files, services.batches), services.store).register(app)
    client: TestClient = TestClient(TestServer(app))  # type: ignore[type-arg]
    await client.start_server()
    return client


def multipart(*files: tuple[str | None, bytes, dict[str, str]]) -> tuple[bytes, str]:
    return bulk_body(files)


async def post(client: TestClient, body: Any, params: dict[str, str] | None = None,  # type: ignore[type-arg]
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    if isinstance(body, tuple):
        body, content_type = body
        headers = {"Content-Type": content_type, **(headers or {})}
    reply = await client.post("/api/files/bulk", data=body, params=params or {}, headers={**USER, **(headers or {})})
    return reply.status, await reply.json()


@pytest.fixture
async def world() -> World:
    world = World()
    await world.give_plan("u", SMALL)
    return world


async def test_each_file_is_judged_on_its_own_with_a_result_per_file(world: World) -> None:
    services = world.process()
    fav = parse_file_ref("u", "FAVOURITES", "home.gpx")
    old, _ = await services.uploader.upload(UploadRequest(fav, "dev", body(b"f" * 100), 100))
    client = await client_for(world)
    try:
        status, answer = await post(client, multipart(
            ("FAVOURITES/a.gpx", b"a" * 1000, {}),                       # stored
            ("FAVOURITES/home.gpx", b"conflict", {}),                    # exists: no base, no overwrite
            ("GPX/ride.gpx", b"<gpx/>", {}),                             # not in the Start plan
            ("FAVOURITES/big.gpx", b"b" * 4001, {}),                     # over the plan's 4,000 per file
            ("FAVOURITES/b.gpx", b"b" * 2000, {"X-Client-Time": "1700000000000"}),  # stored
            ("FAVOURITES/quota.gpx", b"q" * 3950, {"X-File-Size": "3950"}),  # over the quota of 6,000
            ("FAVOURITES/home.gpx", b"h" * 300, {"X-Base-Version": old.version_id}),  # based on the head
            ("NOPE/x", b"x", {}),                                        # unknown type
            ("notype.gpx", b"x", {}),                                    # no TYPE/ in the name
        ))
    finally:
        await client.close()
    assert status == 200, answer
    results = answer["results"]
    assert [(r["index"], r["status"], r.get("error", {}).get("code")) for r in results] == [
        (0, 201, None), (1, 409, "version_conflict"), (2, 403, "type_not_in_plan"), (3, 413, "file_too_large"),
        (4, 201, None), (5, 413, "quota_exceeded"), (6, 201, None), (7, 400, "unknown_type"),
        (8, 400, "invalid_name")]
    assert (answer["stored"], answer["refused"]) == (3, 6)
    assert results[0]["size"] == 1000 and results[0]["checksum"] == "sha256:" + hashlib.sha256(b"a" * 1000).hexdigest()
    assert results[4]["clienttime"] == 1700000000000 and results[4]["category"] == "my_places"
    assert results[1]["error"]["head"]["version_id"] == old.version_id  # the conflict shows the head now
    assert results[6]["size"] == 300
    account = settled(world)
    assert (account["used_bytes"], account["file_count"]) == (1000 + 2000 + 300, 3)
    assert answer["usage"] == {"used_bytes": 3300, "file_count": 3, "quota_bytes": 6_000}
    # the refused files left nothing: one version each for the stored, two for home.gpx
    stored = {(v["name"], v["size"]) for v in world.versions.docs.values()}
    assert stored == {("home.gpx", 100), ("a.gpx", 1000), ("b.gpx", 2000), ("home.gpx", 300)}
    assert len(world.blobs.objects) == 4
    assert all(v["device_num"] == 7 for v in world.versions.docs.values() if v["name"] != "home.gpx" or
               v["size"] == 300)
    uploaded = [e for key in world.heads.docs for e in world.events_in(world.heads, key)]
    assert uploaded.count("file-uploaded") == 4  # home.gpx twice, a.gpx, b.gpx


async def test_overwrite_for_every_part_and_per_part(world: World) -> None:
    client = await client_for(world)
    try:
        assert (await post(client, multipart(("FAVOURITES/a.gpx", b"1", {}))))[0] == 200
        _, answer = await post(client, multipart(("FAVOURITES/a.gpx", b"22", {})), params={"overwrite": "true"})
        assert answer["results"][0]["status"] == 201
        _, answer = await post(client, multipart(("FAVOURITES/a.gpx", b"333", {"X-Overwrite": "false"})),
                               params={"overwrite": "true"})
        assert answer["results"][0]["error"]["code"] == "version_conflict"
        _, answer = await post(client, multipart(("FAVOURITES/a.gpx", b"4444", {"X-Overwrite": "true"})))
        assert answer["results"][0]["size"] == 4
    finally:
        await client.close()
    assert settled(world)["used_bytes"] == 4


async def test_an_upload_over_a_trashed_file_takes_it_out_of_the_trash_as_a_single_upload_does(world: World) -> None:
    ref = parse_file_ref("u", "FAVOURITES", "t.gpx")
    _, marker = await trashed(world, ref, 50)
    world.publisher.handed_to_trash.clear()
    client = await client_for(world)
    try:
        _, answer = await post(client, multipart(("FAVOURITES/t.gpx", b"again", {})))
    finally:
        await client.close()
    assert answer["results"][0]["status"] == 201
    assert [e["key"] for e in world.publisher.handed_to_trash] == ["u"]  # file-uploaded handed over before the answer


async def test_more_files_than_the_bound_are_refused_after_the_first_ones(world: World) -> None:
    client = await client_for(world, max_files=2)
    try:
        status, answer = await post(client, multipart(*((f"FAVOURITES/{i}.gpx", b"x", {}) for i in range(4))))
    finally:
        await client.close()
    assert status == 413 and answer["error"]["code"] == "too_many_files"
    assert answer["error"]["max_files_per_request"] == 2 and "at most 2 files" in answer["error"]["message"]
    assert [r["status"] for r in answer["error"]["results"]] == [201, 201]
    assert settled(world)["file_count"] == 2


async def test_a_body_that_is_not_multipart_is_400_and_stores_nothing(world: World) -> None:
    client = await client_for(world)
    try:
        status, answer = await post(client, b"FAVOURITES/a.gpx", headers={"Content-Type": "application/octet-stream"})
        assert status == 400 and answer["error"]["code"] == "malformed_body"
        assert "multipart/form-data" in answer["error"]["message"]
        status, answer = await post(client, b"no boundary", headers={"Content-Type": "multipart/form-data"})
        assert status == 400 and answer["error"]["code"] == "malformed_body", answer
        status, answer = await post(client, multipart())
        assert status == 400 and "carries no file" in answer["error"]["message"], answer
    finally:
        await client.close()
    assert world.versions.docs == {} and world.blobs.objects == {}


async def test_a_body_broken_in_the_middle_keeps_the_files_before_and_undoes_the_one_it_broke(world: World) -> None:
    boundary = uuid.uuid4().hex

    def part(target: str, data: bytes) -> bytes:
        return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{target}\"\r\n\r\n"
                ).encode() + data + b"\r\n"

    async def broken() -> AsyncIterator[bytes]:
        yield part("FAVOURITES/ok.gpx", b"fine")
        # the second part never ends: the body stops without its boundary
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"FAVOURITES/cut.gpx\""
               f"\r\n\r\n").encode() + b"c" * 3000

    client = await client_for(world)
    try:
        status, answer = await post(client, broken(),
                                    headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    finally:
        await client.close()
    assert status == 400 and answer["error"]["code"] == "malformed_body", answer
    assert [r["name"] for r in answer["error"]["results"]] == ["ok.gpx"], answer
    account = settled(world)
    assert (account["used_bytes"], account["file_count"]) == (4, 1)
    assert [v["name"] for v in world.versions.docs.values()] == ["ok.gpx"] and len(world.blobs.objects) == 1


async def test_names_with_folders_and_non_ascii_characters(world: World) -> None:
    client = await client_for(world)
    try:
        _, answer = await post(client, multipart(("FAVOURITES/trips/2024/Zürich ★.gpx", b"z", {})))
    finally:
        await client.close()
    assert answer["results"][0]["name"] == "trips/2024/Zürich ★.gpx" and answer["results"][0]["status"] == 201


async def test_a_part_that_is_no_file_stops_the_request_after_the_files_before(world: World) -> None:
    client = await client_for(world)
    try:
        status, answer = await post(client, multipart(("FAVOURITES/a.gpx", b"a", {}), (None, b"a form field", {}),
                                                      ("FAVOURITES/b.gpx", b"b", {})))
    finally:
        await client.close()
    assert status == 400 and answer["error"]["code"] == "malformed_body"
    assert "part 2 is not a file" in answer["error"]["message"]
    assert [(r["name"], r["status"]) for r in answer["error"]["results"]] == [("a.gpx", 201)]
    assert settled(world)["file_count"] == 1


async def test_small_files_are_written_in_batches_and_large_ones_one_by_one(world: World) -> None:
    await world.give_plan("u", {"plan": "pro", "quota_bytes": 10_000_000})
    client = await client_for(world)
    big = b"L" * 300_000  # over bulk.SMALL_FILE: streamed through the single upload
    try:
        _, answer = await post(client, multipart(
            *((f"FAVOURITES/s{i}.gpx", b"s" * 10, {"X-File-Size": "10"}) for i in range(5)),
            ("FAVOURITES/big.gpx", big, {}), ("FAVOURITES/t.gpx", b"t", {}),
            ("FAVOURITES/t.gpx", b"tt", {"X-Overwrite": "true"})))  # the same name twice: two batches
    finally:
        await client.close()
    assert [r["status"] for r in answer["results"]] == [201] * 8
    assert [r["seq"] for r in answer["results"]] == list(range(1, 9))  # effects in the order of the parts
    account = settled(world)
    assert (account["used_bytes"], account["file_count"]) == (50 + len(big) + 2, 7)
    # one storage-usage-changed per batch (5 small files), per single upload (big) and per batch after
    assert world.events_in(world.accounts, "u") == ["storage-usage-changed"] * 4
    assert {world.blobs.objects[v["blob_key"]] for v in world.versions.docs.values() if v["name"] == "big.gpx"} \
        == {big}
    assert await world.process().uploader.store.file_head(parse_file_ref("u", "FAVOURITES", "t.gpx")) is not None


async def test_a_declared_size_that_does_not_match_refuses_that_file_only(world: World) -> None:
    client = await client_for(world)
    try:
        _, answer = await post(client, multipart(("FAVOURITES/a.gpx", b"abc", {"X-File-Size": "5"}),
                                                 ("FAVOURITES/b.gpx", b"b", {})))
    finally:
        await client.close()
    assert [(r["status"], r.get("error", {}).get("code")) for r in answer["results"]] == [
        (400, "upload_incomplete"), (201, None)]
    assert settled(world)["used_bytes"] == 1
