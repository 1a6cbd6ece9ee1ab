"""Kafka down is survivable: writes succeed for the client while Kafka is away, and their
events arrive once it is back — none lost."""


from osmcloud_localstack.client import eventually, login


async def test_upload_and_delete_while_kafka_is_down(stack, gateway):
    me, _ = await login(gateway, stack.smtp_sink_url)
    assert (await me.call("POST", "/api/billing/start")).status == 201

    async def quota_known():
        return (await me.call("GET", "/api/files/usage")).body["quota_bytes"] > 0
    await eventually(quota_known, what="files learning the Start quota")

    stack.stop_kafka()
    try:
        up = await me.call("PUT", "/api/files/OSM_NOTES/notes.osn", data=b"note while kafka is away")
        assert up.status == 201, up
        kept = await me.call("PUT", "/api/files/PROFILE/car.osf", data=b"{profile: car}")
        assert kept.status == 201, kept
        gone = await me.call("DELETE", "/api/files/OSM_NOTES/notes.osn")
        assert gone.status == 200, gone
        # read-your-writes needs no Kafka: files handed the delete to trash before answering
        trash = (await me.call("GET", "/api/trash")).body
        assert trash["total_items"] == 1 and trash["months"][0]["items"][0]["name"] == "notes.osn"
    finally:
        stack.start_kafka()

    async def usage_arrived():
        usage = (await me.call("GET", "/api/billing/account")).body["usage"] or {}
        # three changes: two uploads and a delete; the newest figures win
        return usage if usage.get("sequence") == 3 else None
    usage = await eventually(usage_arrived, timeout=90, what="usage reaching billing after Kafka came back")
    assert usage["used_bytes"] == len(b"{profile: car}") and usage["file_count"] == 1
    # the events' Kafka delivery (billing has them all now) did not add the item a second time
    assert (await me.call("GET", "/api/trash")).body["total_items"] == 1
