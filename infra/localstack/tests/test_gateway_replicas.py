"""The real nginx with the shared template in front of two replicas of files: an idempotent
request meets a replica that is down or not ready and is answered by the other one; a POST is
never sent twice; a replica that keeps failing is left out (passive health check).

Compose gives nginx a service name that resolves to every replica; here the rendered upstream's
`server` line is repeated for the second replica's address, with the template's own parameters."""

import asyncio
import os
import re
import shutil
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from osmcloud_localstack.gateway import write_gateway_config
from osmcloud_localstack.paths import repo_root
from osmcloud_localstack.procs import ProcessManager
from osmcloud_localstack.readiness import http_ok
from osmcloud_localstack.testing import free_port

NGINX = "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else shutil.which("nginx")
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx not installed (run infra/bootstrap.sh)")

SECRET = "gw-secret-for-replica-tests"
TOKEN = {"Authorization": "Bearer good"}


@dataclass
class Replica:
    name: str
    port: int
    ready: bool = True
    seen: Counter = field(default_factory=Counter)  # (method, path) -> requests that reached it
    runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        async def verify(request: web.Request) -> web.Response:
            return web.Response(status=200, headers={"X-User-Id": "u1", "X-Device-Id": "d1"})

        async def handle(request: web.Request) -> web.Response:
            await request.read()
            self.seen[(request.method, request.path)] += 1
            if not self.ready:  # what osmcloud_common.http answers while a replica sets up
                return web.json_response({"error": {"code": "unavailable", "message": f"{self.name} is starting"}},
                                         status=503, headers={"Retry-After": "1"})
            return web.json_response({"replica": self.name})

        app = web.Application()
        app.router.add_get("/internal/verify", verify)
        app.router.add_route("*", "/{tail:.*}", handle)
        return app

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@dataclass
class Gateway:
    url: str
    a: Replica
    b: Replica


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    a, b = Replica("a", free_port()), Replica("b", free_port())
    for replica in (a, b):
        await replica.start()
    port = free_port()
    conf = write_gateway_config(
        repo=repo_root(), prefix=tmp_path / "nginx", logs=tmp_path / "logs", listen=f"127.0.0.1:{port}",
        upstreams={"auth": f"127.0.0.1:{a.port}", "files": f"127.0.0.1:{a.port}", "trash": f"127.0.0.1:{a.port}",
                   "billing": f"127.0.0.1:{a.port}", "s3": f"127.0.0.1:{a.port}"},
        gateway_secret=SECRET)
    rendered = tmp_path / "nginx" / "conf.d" / "default.conf"
    text = rendered.read_text()
    files_block = re.search(r"upstream osmcloud_files \{\n(    server 127\.0\.0\.1:\d+ ([^;]*);\n)", text)
    assert files_block, "the files upstream has one server line with its parameters"
    params = files_block.group(2)
    assert "max_fails=" in params and "fail_timeout=" in params
    at = files_block.end(1)
    rendered.write_text(text[:at] + f"    server 127.0.0.1:{b.port} {params};\n" + text[at:])
    pm = ProcessManager(tmp_path / "run", tmp_path / "logs")
    pm.start("gateway",
             [NGINX, "-c", str(conf), "-p", f"{tmp_path / 'nginx'}/", "-e", str(tmp_path / "logs" / "e.log")],
             match=str(conf))
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            if await asyncio.to_thread(http_ok, f"{url}/healthz") is None:
                break
            await asyncio.sleep(0.05)
        yield Gateway(url, a, b)
    finally:
        pm.stop("gateway")
        for replica in (a, b):
            await replica.stop()


async def _calls(gw: Gateway, method: str, n: int) -> list[tuple[int, str]]:
    out = []
    async with aiohttp.ClientSession() as http:
        for _ in range(n):
            async with http.request(method, f"{gw.url}/api/files/OSM_NOTES/x.osn", headers=TOKEN, data=b"x") as r:
                body = await r.json()
                out.append((r.status, body.get("replica") or body["error"]["code"]))
    return out


async def test_both_replicas_get_traffic(gateway: Gateway) -> None:
    answers = await _calls(gateway, "GET", 6)
    assert {status for status, _ in answers} == {200}
    assert {who for _, who in answers} == {"a", "b"}


async def test_a_replica_that_is_down_is_skipped_for_idempotent_requests(gateway: Gateway) -> None:
    await gateway.b.stop()
    for method in ("GET", "PUT", "DELETE"):
        answers = await _calls(gateway, method, 4)
        assert answers == [(200, "a")] * 4, (method, answers)


async def test_a_replica_that_is_not_ready_is_skipped_and_then_left_out(gateway: Gateway) -> None:
    gateway.b.ready = False
    answers = await _calls(gateway, "GET", 10)
    assert answers == [(200, "a")] * 10, answers
    # two 503s within fail_timeout take b out: later requests no longer reach it at all
    tried_b = gateway.b.seen[("GET", "/api/files/OSM_NOTES/x.osn")]
    assert tried_b == 2, gateway.b.seen
    # once it is ready again it gets traffic back (after fail_timeout, 5 s)
    gateway.b.ready = True
    # the template's fail_timeout (5 s), which nginx counts in whole seconds: what this test is about
    await asyncio.sleep(6.5)
    answers = await _calls(gateway, "GET", 6)
    assert {who for _, who in answers} == {"a", "b"}, answers


async def test_a_post_is_never_sent_to_a_second_replica(gateway: Gateway) -> None:
    gateway.b.ready = False
    answers = await _calls(gateway, "POST", 4)
    key = ("POST", "/api/files/OSM_NOTES/x.osn")
    sent = gateway.a.seen[key] + gateway.b.seen[key]
    assert sent == 4, (gateway.a.seen, gateway.b.seen)  # each POST reached exactly one replica
    # those that met b got its 503 JSON (the client may retry); the others a's answer
    assert {a for a in answers} <= {(200, "a"), (503, "unavailable")}
    assert (503, "unavailable") in answers
