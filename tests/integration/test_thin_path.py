"""One path through all four services, through the gateway only; every arrow a real Kafka
event between real processes."""


from minio import Minio
from pymongo import AsyncMongoClient

from osmcloud_localstack.client import eventually, login
from osmcloud_localstack.testing import events_of

FAVOURITES = b'<?xml version="1.0"?><gpx><wpt lat="52.1" lon="4.3"><name>Home</name></wpt></gpx>\n'


async def test_login_plan_upload_list_download_delete_trash(stack, gateway):
    me, session = await login(gateway, stack.smtp_sink_url)
    user_id = session["user_id"]
    assert session["new_account"] is True

    registered = await events_of(stack, "auth", user_id)
    assert [e["type"] for e in registered] == ["account-registered"]
    assert registered[0]["data"]["email"] == session["email"]

    reply = await me.call("POST", "/api/billing/start")
    assert reply.status == 201, reply
    assert reply.body["plan"] == "start"

    # files learns the quota from billing's subscription-activated event
    async def quota_known():
        usage = await me.call("GET", "/api/files/usage")
        return usage.body if usage.body["quota_bytes"] == 5 * 1024 * 1024 else None
    usage = await eventually(quota_known, what="files learning the Start quota")
    assert usage["plan"] == "start" and usage["used_bytes"] == 0

    reply = await me.call("PUT", "/api/files/FAVOURITES/favourites.gpx", data=FAVOURITES,
                          params={"clienttime": "1767225600000"})
    assert reply.status == 201, reply
    version_id = reply.body["version_id"]
    assert reply.body["size"] == len(FAVOURITES)

    # the blob is in S3 and the version in files' own database
    s3 = Minio(stack.s3_endpoint, access_key=stack.s3_access_key, secret_key=stack.s3_secret_key, secure=False)
    blob = s3.get_object(stack.s3_bucket, f"users/{user_id}/{version_id}")
    assert blob.read() == FAVOURITES
    blob.close()
    mongo = AsyncMongoClient(stack.mongo_url)
    try:
        stored = await mongo[f"{stack.db_prefix}files"]["versions"].find_one({"_id": version_id})
        assert stored["size"] == len(FAVOURITES) and stored["user_id"] == user_id
    finally:
        await mongo.close()

    # file-uploaded / storage-usage-changed reach billing's account view
    async def usage_seen():
        account = await me.call("GET", "/api/billing/account")
        return account.body["usage"] if (account.body["usage"] or {}).get("used_bytes") == len(FAVOURITES) else None
    assert (await eventually(usage_seen, what="usage reaching billing"))["file_count"] == 1

    listed = await me.call("GET", "/api/files")
    assert [(f["type"], f["name"], f["version_id"]) for f in listed.body["files"]] == [
        ("FAVOURITES", "favourites.gpx", version_id)]

    downloaded = await me.call("GET", "/api/files/FAVOURITES/favourites.gpx")
    assert downloaded.status == 200 and downloaded.body == FAVOURITES

    deleted = await me.call("DELETE", "/api/files/FAVOURITES/favourites.gpx")
    assert deleted.status == 200, deleted

    async def trashed():
        trash = await me.call("GET", "/api/trash")
        return trash.body if trash.body["total_items"] == 1 else None
    trash = await eventually(trashed, what="the trash listing the deleted file")
    item = trash["months"][0]["items"][0]
    assert (item["type"], item["name"], item["last_version_id"]) == ("FAVOURITES", "favourites.gpx", version_id)
    assert (await me.call("GET", "/api/files")).body["files"] == []

    anonymous = gateway.with_token(None)
    for method, path in [("GET", "/api/files"), ("GET", "/api/files/usage"), ("PUT", "/api/files/FAVOURITES/x.gpx"),
                         ("GET", "/api/files/FAVOURITES/favourites.gpx"), ("DELETE", "/api/files/FAVOURITES/x"),
                         ("GET", "/api/trash"), ("GET", "/api/billing/account"), ("POST", "/api/billing/start"),
                         ("GET", "/api/auth/account")]:
        reply = await anonymous.call(method, path)
        assert reply.status == 401, (method, path, reply)
        assert reply.error_code() == "unauthorized", (method, path, reply)
    forged = await anonymous.call("GET", "/api/files", headers={"X-User-Id": user_id})
    assert forged.status == 401
    bad_token = await gateway.with_token("not-a-token").call("GET", "/api/files")
    assert bad_token.status == 401
