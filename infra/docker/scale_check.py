"""Shows that scaled compose replicas share the work (run by `bash infra/docker/compose.sh scale`).

Against a compose system started with ``--scale files=3 --scale trash=2`` (OSMCLOUD_* variables
from ``compose.sh env``): USERS users sign up, take the Start plan, upload FILES files each
through the gateway and delete DELETES of them. Then every replica's own /metrics (read inside
its container with ``docker exec``) says what it did:

  files replicas   uploads served (PUT 201, spread by nginx over every replica's address)
                   and events handled (billing's plan events, Kafka partitions shared by the
                   consumer group)
  trash replicas   events handled (the file-deleted events that become trash items) and
                   items purged (each user empties its trash; nginx spreads those requests,
                   and the purge events are then shared by the files replicas)

It exits non-zero unless every files replica served uploads, every trash replica handled
events and purged items, every deleted file reached the trash and every trash was emptied.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
import uuid

import aiohttp
import docker

from osmcloud_localstack.client import GatewayClient, eventually, login

USERS, FILES, DELETES = 12, 4, 2
PROJECT = os.environ.get("COMPOSE_PROJECT_NAME", "osmcloud")


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus metric's samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{name}(?:\{{(.*)\}})? ([0-9.eE+-]+)$", line)
        if not m:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def replicas(client: docker.DockerClient, service: str) -> list[tuple[str, str]]:
    """(container name, /metrics text) of every running replica of a compose service."""
    found = client.containers.list(filters={"label": [f"com.docker.compose.project={PROJECT}",
                                                      f"com.docker.compose.service={service}"]})
    out = []
    for c in sorted(found, key=lambda c: int(c.labels.get("com.docker.compose.container-number", "0"))):
        code = ("import os, urllib.request; "
                "url = 'http://127.0.0.1:%s/metrics' % os.environ['HTTP_PORT']; "
                "print(urllib.request.urlopen(url).read().decode())")
        res = c.exec_run(["python", "-c", code])
        if res.exit_code != 0:
            raise SystemExit(f"cannot read /metrics of {c.name}: {res.output.decode(errors='replace')[-300:]}")
        out.append((c.name, res.output.decode()))
    return out


async def login_retrying(gateway: GatewayClient, sink: str) -> tuple[GatewayClient, dict]:
    for attempt in range(20):
        try:
            return await login(gateway, sink, email=f"scale-{uuid.uuid4().hex[:10]}@example.test")
        except AssertionError as exc:  # 429 from the gateway's rate limit on public routes
            if "429" not in str(exc) or attempt == 19:
                raise
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable")


async def drive(gateway_url: str, sink: str) -> None:
    async with aiohttp.ClientSession() as session:
        gateway = GatewayClient(session, gateway_url)
        users = [await login_retrying(gateway, sink) for _ in range(USERS)]
        for me, _ in users:
            reply = await me.call("POST", "/api/billing/start")
            assert reply.status == 201, reply

        async def quota(me: GatewayClient) -> bool:
            return (await me.call("GET", "/api/files/usage")).body.get("quota_bytes", 0) > 0

        for me, _ in users:
            await eventually(lambda me=me: quota(me), timeout=60, what="files learning the plan")
        for me, _ in users:
            for i in range(FILES):
                reply = await me.call("PUT", f"/api/files/FAVOURITES/favourites-{i}.gpx", data=b"<gpx/>" * (i + 1))
                assert reply.status == 201, reply
            for i in range(DELETES):
                reply = await me.call("DELETE", f"/api/files/FAVOURITES/favourites-{i}.gpx")
                assert reply.status in (200, 204), reply

        async def in_trash(me: GatewayClient) -> bool:
            body = (await me.call("GET", "/api/trash")).body
            return isinstance(body, dict) and body.get("total_items", 0) >= DELETES

        for me, _ in users:
            await eventually(lambda me=me: in_trash(me), timeout=60, what="deleted files reaching the trash")
        for me, _ in users:
            reply = await me.call("DELETE", "/api/trash")
            assert reply.status == 200 and reply.body.get("purged") == DELETES, reply


def main() -> int:
    gateway_url = os.environ["OSMCLOUD_GATEWAY_URL"]
    sink = os.environ["OSMCLOUD_SMTP_SINK_URL"]
    t0 = time.monotonic()
    asyncio.run(drive(gateway_url, sink))
    print(f"{USERS} users: {USERS * FILES} uploads, {USERS * DELETES} deletes through {gateway_url} "
          f"in {time.monotonic() - t0:.1f} s; every deleted file reached the trash, every trash was emptied")
    client = docker.from_env()
    ok = True
    try:
        print(f"{'replica':28} {'uploads (PUT 201)':>18} {'events handled':>15} {'items purged':>13}")
        for service in ("files", "trash"):
            rows = replicas(client, service)
            for name, text in rows:
                uploads = metric(text, "http_requests_total", method="PUT", status="201")
                handled = metric(text, "events_handled_total")
                purged = metric(text, "trash_items_purged_total", reason="emptied") if service == "trash" else 0
                print(f"{name:28} {uploads:18.0f} {handled:15.0f} {purged:13.0f}")
                if service == "files" and uploads == 0:
                    ok = False
                if service == "trash" and (handled == 0 or purged == 0):
                    ok = False
            if len(rows) < 2:
                print(f"only {len(rows)} replica(s) of {service}: start with --scale")
                ok = False
    finally:
        client.close()
    print("every replica did part of the work" if ok else "FAILED: some replica did no work")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
