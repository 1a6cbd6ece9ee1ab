"""Issue 16's storage attacks through the gateway, counting the bytes the S3 server holds for
the user: old versions and the trash are bounded by the plan (docs/adr/0005-storage-bound.md),
while usage, deletes and uploads the plan allows behave as before."""

import asyncio

from osmcloud_localstack.client import eventually

MIB = 1024 * 1024
LIMIT = 10 * MIB  # Start: 2 x 5 MiB


async def s3_bytes(files, user_id: str) -> int:
    def total() -> int:
        return sum(o.size for o in files.s3.list_objects(files.stack.s3_bucket, prefix=f"users/{user_id}/",
                                                          recursive=True))
    return await asyncio.to_thread(total)


async def test_twenty_uploads_of_one_megabyte_to_one_name_keep_at_most_the_storage_limit(files):
    me, session = await files.start_user()
    user_id = session["user_id"]
    for i in range(20):
        body = bytes([i]) * MIB
        reply = await me.call("PUT", "/api/files/FAVOURITES/fav.gpx", data=body, params={"overwrite": "true"})
        assert reply.status == 201, reply
        assert reply.body["usage"]["used_bytes"] == MIB  # usage: the newest version only, as before
        assert await s3_bytes(files, user_id) <= LIMIT  # the server never keeps more, at any step
    usage = (await me.call("GET", "/api/files/usage")).body
    assert usage["used_bytes"] == MIB and usage["storage_limit_bytes"] == LIMIT
    assert usage["stored_bytes"] <= LIMIT
    history = (await me.call("GET", "/api/files/history/FAVOURITES/fav.gpx")).body["versions"]
    assert 1 < len(history) <= 9 and sum(v["size"] for v in history) == await s3_bytes(files, user_id)
    assert (await me.call("GET", "/api/files/FAVOURITES/fav.gpx")).body == bytes([19]) * MIB
    oldest_kept = min(v["updatetime"] for v in history)
    assert [v["updatetime"] for v in history] == sorted((v["updatetime"] for v in history), reverse=True)
    assert oldest_kept > 0


async def test_upload_and_delete_cycles_cannot_fill_the_trash_beyond_the_limit(files):
    me, session = await files.start_user()
    user_id = session["user_id"]
    for i in range(20):
        name = f"cycle-{i:02d}.gpx"
        assert (await me.call("PUT", f"/api/files/FAVOURITES/{name}", data=bytes([i]) * MIB)).status == 201
        assert (await me.call("DELETE", f"/api/files/FAVOURITES/{name}")).status == 200
        assert await s3_bytes(files, user_id) <= LIMIT
    usage = (await me.call("GET", "/api/files/usage")).body
    assert usage["used_bytes"] == 0 and usage["file_count"] == 0  # deleting lowered usage each time
    assert usage["stored_bytes"] <= LIMIT

    async def oldest_items_dropped():
        body = (await me.call("GET", "/api/trash")).body
        names = {i["name"] for month in body["months"] for i in month["items"]}
        return names if "cycle-00.gpx" not in names and "cycle-19.gpx" in names else None
    names = await eventually(oldest_items_dropped, what="the trash dropping the items the bound removed")
    assert len(names) <= 10
    # what remains restores, and an upload the plan allows still succeeds
    body = (await me.call("GET", "/api/trash")).body
    newest = next(i for month in body["months"] for i in month["items"] if i["name"] == "cycle-19.gpx")
    restored = await me.call("POST", f"/api/trash/items/{newest['id']}/restore")
    assert restored.status == 200, restored
    assert (await me.call("GET", "/api/files/FAVOURITES/cycle-19.gpx")).body == bytes([19]) * MIB
    for name in ("new-1.gpx", "new-2.gpx"):  # 1 + 2 + 2 MiB: the whole quota
        assert (await me.call("PUT", f"/api/files/FAVOURITES/{name}", data=b"x" * (2 * MIB))).status == 201
    assert await s3_bytes(files, user_id) <= LIMIT


async def test_history_comes_in_pages(files):
    me, _ = await files.start_user()
    for i in range(7):
        assert (await me.call("PUT", "/api/files/GLOBAL/settings.json", data=bytes([i]) * 10,
                              params={"overwrite": "true"})).status == 201
    seen, before = [], None
    while True:
        params = {"limit": "3", **({"before": str(before)} if before is not None else {})}
        page = (await me.call("GET", "/api/files/history/GLOBAL/settings.json", params=params)).body
        assert len(page["versions"]) <= 3
        seen += page["versions"]
        before = page["next_before"]
        if before is None:
            break
    assert len(seen) == 7 and len({v["version_id"] for v in seen}) == 7
    assert [v["updatetime"] for v in seen] == sorted((v["updatetime"] for v in seen), reverse=True)
    bad = await me.call("GET", "/api/files/history/GLOBAL/settings.json", params={"limit": "5000"})
    assert bad.status == 400 and "limit" in bad.body["error"]["message"]
