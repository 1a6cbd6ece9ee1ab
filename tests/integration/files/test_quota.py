"""Exact quotas: bytes and file counts reserved atomically before bytes are accepted, under
real concurrency through the gateway; plan rules for types."""

import asyncio
import os

from osmcloud_common.events import Entitlement
from osmcloud_localstack.client import login

MIB = 1024 * 1024
KIB = 1024


def trickle(body: bytes, step: int = 16 * KIB):
    async def gen():
        for i in range(0, len(body), step):
            yield body[i:i + step]
    return gen()


async def test_fifty_uploads_racing_for_the_last_megabyte_never_pass_the_quota(files):
    me, session = await files.start_user()  # Start: 5 MiB quota, 2 MiB per file
    user = session["user_id"]
    for name in ("a.gpx", "b.gpx"):
        assert (await me.call("PUT", f"/api/files/FAVOURITES/fill/{name}", data=os.urandom(2 * MIB))).status == 201
    size = 100 * KIB
    types = ["FAVOURITES", "GLOBAL", "PROFILE", "OSM_EDITS", "OSM_NOTES"]

    async def one(i: int):
        body = os.urandom(size)
        data = trickle(body) if i % 5 == 0 else body  # every fifth of unknown length (chunked)
        return await me.call("PUT", f"/api/files/{types[i % 5]}/race/{i}.bin", data=data)
    replies = await asyncio.gather(*(one(i) for i in range(50)))

    won = [r for r in replies if r.status == 201]
    refused = [r for r in replies if r.status != 201]
    free = 5 * MIB - 4 * MIB
    assert len(won) == free // size, [r.status for r in replies]  # exactly as many as fit
    for reply in refused:
        assert reply.status == 413 and reply.error_code() == "quota_exceeded", reply
        assert "quota" in reply.body["error"]["message"]
    usage = (await me.call("GET", "/api/files/usage")).body
    assert usage["used_bytes"] == 4 * MIB + len(won) * size <= usage["quota_bytes"]
    assert usage["file_count"] == 2 + len(won)
    await files.assert_nothing_held(user, 4 * MIB + len(won) * size, 2 + len(won))
    assert len(await files.blob_keys(user)) == 2 + len(won)  # refused uploads stored nothing
    storage = (await me.call("GET", "/api/files/storage")).body
    assert sum(t["used_bytes"] for t in storage["types"]) == usage["used_bytes"]


async def test_the_file_count_limit_holds_under_concurrency(files):
    limited = Entitlement(plan="start", quota_bytes=100 * MIB, max_file_bytes=MIB, max_files=5,
                          allowed_types=["FAVOURITES", "GLOBAL", "OSM_EDITS", "OSM_NOTES", "PROFILE"])
    me, session = await files.user_with(limited)
    user = session["user_id"]
    for i in range(2):
        assert (await me.call("PUT", f"/api/files/OSM_NOTES/n{i}.osn", data=b"note")).status == 201
    replies = await asyncio.gather(*(me.call("PUT", f"/api/files/OSM_EDITS/e{i}.osc", data=b"edit" * i)
                                     for i in range(12)))
    assert sorted(r.status for r in replies) == [201] * 3 + [413] * 9
    for reply in (r for r in replies if r.status == 413):
        assert reply.error_code() == "file_quota_exceeded" and "quota" in reply.body["error"]["message"], reply
    assert (await me.call("GET", "/api/files/usage")).body["file_count"] == 5
    # replacing a file is not a new file; a deleted file frees its place
    again = await me.call("PUT", "/api/files/OSM_NOTES/n0.osn", data=b"note v2", params={"overwrite": "true"})
    assert again.status == 201, again
    assert (await me.call("PUT", "/api/files/OSM_NOTES/n9.osn", data=b"x")).status == 413
    assert (await me.call("DELETE", "/api/files/OSM_NOTES/n1.osn")).status == 200
    assert (await me.call("PUT", "/api/files/OSM_NOTES/n9.osn", data=b"x")).status == 201
    await files.assert_nothing_held(user, len(b"note v2") + 1 + await _edit_bytes(me), 5)


async def _edit_bytes(me) -> int:
    listed = (await me.call("GET", "/api/files", params={"types": "OSM_EDITS"})).body["files"]
    return sum(f["size"] for f in listed)


async def test_plan_rules_name_the_plan_that_allows_a_type(files):
    me, _ = await files.start_user()
    refused = await me.call("PUT", "/api/files/GPX/tracks/ride.gpx", data=b"<gpx/>")
    assert refused.status == 403 and refused.error_code() == "type_not_in_plan", refused
    assert "Pro" in refused.body["error"]["message"]
    unknown = await me.call("PUT", "/api/files/NOPE/x", data=b"x")
    assert unknown.status == 400 and unknown.error_code() == "unknown_type"
    nobody, _ = await login(files.gateway, files.stack.smtp_sink_url)
    no_plan = await nobody.call("PUT", "/api/files/FAVOURITES/x.gpx", data=b"x")
    assert no_plan.status == 403 and no_plan.error_code() == "no_plan"
    assert "Start" in no_plan.body["error"]["message"]


async def test_two_files_replicas_racing_for_the_last_megabyte_never_pass_the_quota(files, tmp_path):
    """Half of the uploads through the gateway (files #1), half straight to a second files
    process on the same database: every quota decision is one conditional write the
    database makes atomic, whichever process sends it."""
    import aiohttp

    from osmcloud_localstack.testing import service_replica

    me, session = await files.start_user()
    user = session["user_id"]
    for name in ("a.gpx", "b.gpx"):
        assert (await me.call("PUT", f"/api/files/FAVOURITES/fill/{name}", data=os.urandom(2 * MIB))).status == 201
    size = 100 * KIB

    async def ready(http, url):
        async with http.get(f"{url}/readyz") as r:
            return r.status == 200

    stack = files.stack
    async with service_replica(stack, "files", tmp_path / "files-2.log", ready,
                               extra_env={"S3_ENDPOINT": stack.s3_endpoint, "S3_ACCESS_KEY": stack.s3_access_key,
                                          "S3_SECRET_KEY": stack.s3_secret_key, "S3_BUCKET": stack.s3_bucket,
                                          "S3_SECURE": str(stack.s3_secure).lower()}) as second, \
            aiohttp.ClientSession() as http:
        direct = {"X-Gateway-Secret": stack.gateway_secret, "X-User-Id": user, "X-Device-Id": session["device_id"]}

        async def via_second(i: int) -> int:
            async with http.put(f"{second}/api/files/GLOBAL/race2/{i}.bin", data=os.urandom(size),
                                headers=direct) as r:
                return r.status

        async def via_gateway(i: int) -> int:
            return (await me.call("PUT", f"/api/files/PROFILE/race2/{i}.bin", data=os.urandom(size))).status

        statuses = await asyncio.gather(*(via_second(i) if i % 2 else via_gateway(i) for i in range(40)))

    won = statuses.count(201)
    assert won == MIB // size and statuses.count(413) == 40 - won, statuses  # exactly as many as fit
    usage = (await me.call("GET", "/api/files/usage")).body
    assert usage["used_bytes"] == 4 * MIB + won * size <= usage["quota_bytes"]
    await files.assert_nothing_held(user, 4 * MIB + won * size, 2 + won)
