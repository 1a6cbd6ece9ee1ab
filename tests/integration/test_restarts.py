"""The local stack keeps itself running: a service and servers killed with SIGKILL are restarted
by the stack's supervisor, and the client's next request after that succeeds.

Waiting for the restart is the point here (bounded: each process must be ready again within its
start timeout); after it, the client's calls are made at once, with no retry."""

import asyncio

from osmcloud_localstack.client import eventually, login

# a service, the MongoDB-protocol server and the gateway itself, all at once
KILLED = ("files", "ferretdb", "gateway")
RECOVERY_SECONDS = 90


async def test_killed_processes_are_restarted_and_the_next_request_succeeds(supervised_stack, gateway):
    stack = supervised_stack
    me, _ = await login(gateway, stack.smtp_sink_url)
    assert (await me.call("POST", "/api/billing/start")).status == 201

    async def quota_known():
        return (await me.call("GET", "/api/files/usage")).body["quota_bytes"] > 0
    await eventually(quota_known, timeout=120, what="files learning the Start quota")
    stored = await me.call("PUT", "/api/files/OSM_NOTES/before.osn", data=b"written before the crash")
    assert stored.status == 201, stored
    # in mode testcontainers the servers are containers, not this stack's processes: there the
    # service and the gateway are killed (mode local kills all three)
    ours = [name for name in KILLED if stack.controls(name)]
    assert {"files", "gateway"} <= set(ours), ours
    before = {name: stack.process_info(name) for name in ours}

    killed = {name: stack.kill(name) for name in ours}

    for name in [n for n in ("ferretdb", "gateway", "files") if n in ours]:
        await asyncio.to_thread(stack.wait_ready, name, RECOVERY_SECONDS)
    for name, pid in killed.items():
        info = stack.process_info(name)
        assert info["pid"] != pid and info["state"] == "running", (name, info)
        assert info["restarts"] == before[name]["restarts"] + 1, (name, info)
        assert info["last_exit"] == "signal 9 (SIGKILL)", (name, info)

    # the client's next calls succeed: what was stored is there, and new writes are accepted
    read = await me.call("GET", "/api/files/OSM_NOTES/before.osn")
    assert read.status == 200 and read.body == b"written before the crash", read
    stored = await me.call("PUT", "/api/files/OSM_NOTES/after.osn", data=b"written after the restart")
    assert stored.status == 201, stored
    listing = await me.call("GET", "/api/files")
    assert listing.status == 200
    assert {f["name"] for f in listing.body["files"]} >= {"before.osn", "after.osn"}, listing.body


async def test_a_process_stopped_on_purpose_is_not_restarted(supervised_stack, gateway):
    """As compose's unless-stopped: stop_process holds it; start_process brings it back."""
    stack = supervised_stack
    await asyncio.to_thread(stack.stop_service, "billing")
    try:
        assert stack.process_info("billing")["state"] == "held"
        assert stack.local.procs.running("billing") is None
        status = {row["name"]: row for row in stack.local.status()}
        assert status["billing"]["state"].startswith("stopped on purpose")
    finally:
        await asyncio.to_thread(stack.start_service, "billing")
    info = stack.process_info("billing")
    assert info["state"] == "running" and stack.local.procs.running("billing") is not None
    me, _ = await login(gateway, stack.smtp_sink_url)
    assert (await me.call("POST", "/api/billing/start")).status == 201
