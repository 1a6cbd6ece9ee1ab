"""Prometheus for real: the server bootstrap built, scraping the running test stack's services
with deploy/prometheus/alerts.yml, and an alert made to fire.

An unreadable event published to the files topic is set aside by its consumers (trash and
billing) as a dead letter; their `events_dead_lettered_total` rises and OsmcloudDeadLetters
(no `for`) fires on the next evaluation. Scrapes and rule evaluations run on Prometheus' own
clock (every second here), so the check waits for them — bounded, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlparse

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from osmcloud_localstack import monitoring
from osmcloud_localstack.paths import ToolMissing, prometheus_binary, repo_root

WAIT_SECONDS = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prometheus(stack, tmp_path_factory) -> Iterator[str]:
    if not stack.service_urls:
        pytest.skip(f"mode {stack.mode!r} does not name the services' own addresses")
    try:
        binary = prometheus_binary()
    except ToolMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    directory = tmp_path_factory.mktemp("prometheus")
    targets = {name: [urlparse(url).netloc] for name, url in stack.service_urls.items()}
    config = monitoring.write_prometheus_config(directory, targets, repo_root(), interval="1s")
    listen = f"127.0.0.1:{_free_port()}"
    log = open(directory / "prometheus.log", "wb")
    proc = subprocess.Popen(monitoring.prometheus_argv(binary, config, directory / "data", listen),
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://{listen}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"prometheus exited: {(directory / 'prometheus.log').read_text()[-2000:]}"
            try:
                with socket.create_connection(("127.0.0.1", int(listen.rsplit(":", 1)[1])), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "prometheus did not listen within 60 s"
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def _get(http: aiohttp.ClientSession, url: str) -> dict:
    async with http.get(url) as reply:
        assert reply.status == 200, await reply.text()
        return await reply.json()


async def _until(what: str, check, timeout: float = WAIT_SECONDS):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, f"not within {timeout:.0f} s: {what}"
        await asyncio.sleep(0.5)


async def test_each_service_measures_every_groups_lag_from_the_broker(stack, http, gateway):
    """Without Prometheus: a service's own /metrics (not through the gateway) reports the lag of
    every consumer group of the deployment and its outbox backlog. A group is measured once it
    has committed: a sign-up (auth's topic: billing and trash) and a plan (billing's: files)."""
    if not stack.service_urls:
        pytest.skip(f"mode {stack.mode!r} does not name the services' own addresses")
    from prometheus_client.parser import text_string_to_metric_families

    from osmcloud_localstack.client import login
    me, _ = await login(gateway, stack.smtp_sink_url)
    assert (await me.call("POST", "/api/billing/start")).status == 201

    async def lag_groups():
        async with http.get(f"{stack.service_urls['auth']}/metrics") as reply:
            text = await reply.text()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        groups = {s.labels["group"] for s in families["kafka_consumer_lag"].samples}
        return (families, groups) if {f"{stack.topic_prefix}{g}" for g in ("files", "trash", "billing")} <= groups \
            else None

    families, groups = await _until("auth measuring files', trash's and billing's lag", lag_groups, timeout=60)
    assert all(s.value >= 0 for s in families["kafka_consumer_lag"].samples)
    collections = {s.labels["collection"] for s in families["outbox_pending_documents"].samples}
    assert {"users", "devices"} <= collections
    assert families["kafka_consumer_lag_measured_timestamp_seconds"].samples[0].value > time.time() - 60


async def _every_service_scraped(stack, prometheus: str, http: aiohttp.ClientSession) -> set[str]:
    async def all_up():
        targets = (await _get(http, f"{prometheus}/api/v1/targets"))["data"]["activeTargets"]
        healthy = {t["labels"]["service"] for t in targets if t["health"] == "up"}
        return healthy if healthy >= set(stack.service_urls) else None

    return await _until("every service scraped", all_up)


async def test_prometheus_scrapes_every_service_of_the_stack(stack, prometheus, http, gateway):
    from osmcloud_localstack.client import login
    me, _ = await login(gateway, stack.smtp_sink_url)  # events on auth's and billing's topics:
    assert (await me.call("POST", "/api/billing/start")).status == 201  # every group commits

    assert await _every_service_scraped(stack, prometheus, http) == set(stack.service_urls)

    async def groups():
        query = await _get(http, f"{prometheus}/api/v1/query?query={quote('max by (group) (kafka_consumer_lag)')}")
        found = {r["metric"]["group"] for r in query["data"]["result"]}
        return found if {f"{stack.topic_prefix}{g}" for g in ("auth", "files", "trash", "billing")} <= found else None
    await _until("every group's lag in Prometheus", groups)


async def test_an_unreadable_event_fires_the_dead_letters_alert(stack, prometheus, http):
    # the alert is an increase of the counter: Prometheus must have scraped it before the probe
    # (in whatever order the tests run, this one may be the first to use the server)
    await _every_service_scraped(stack, prometheus, http)
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    await producer.start()
    try:
        # JSON with the envelope's user_id and type (tests reading the topic skip other users'),
        # but not an event (no id, occurred_at, ...): its consumers cannot parse it
        probe = f"monitoring-probe-{uuid.uuid4().hex}"
        await producer.send_and_wait(f"{stack.topic_prefix}files",
                                     json.dumps({"user_id": probe, "type": "file-uploaded"}).encode(),
                                     key=probe.encode())
    finally:
        await producer.stop()

    async def firing():
        alerts = (await _get(http, f"{prometheus}/api/v1/alerts"))["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "OsmcloudDeadLetters" and a["state"] == "firing"
                and a["labels"]["group"] == f"{stack.topic_prefix}trash"]

    fired = await _until("OsmcloudDeadLetters firing for trash's group", firing)
    assert all(a["labels"]["event_type"] == "unreadable" for a in fired)
    assert fired[0]["annotations"]["runbook"] == "docs/observability.md#osmclouddeadletters"
    assert Path(repo_root() / "docs" / "observability.md").read_text().count("## OsmcloudDeadLetters") == 1


async def test_a_stopped_consumer_makes_the_lag_alert_pending(stack, prometheus, http, gateway):
    """trash stopped: the account-registered events of new sign-ups (auth's topic, which trash
    also reads for account-deleted) pile up for trash's group. The other services measure that
    lag from the broker, so OsmcloudConsumerLagGrowing turns pending (it fires after 10 min)."""
    from osmcloud_localstack.client import login
    from osmcloud_localstack.testing import CannotControl

    group, topic = f"{stack.topic_prefix}trash", f"{stack.topic_prefix}auth"
    # first, trash's group is known to read auth's topic (it committed there): a sign-up it applies
    await login(gateway, stack.smtp_sink_url)

    async def measured():
        query = f'kafka_consumer_lag{{group="{group}",topic="{topic}"}}'
        reply = await _get(http, f"{prometheus}/api/v1/query?query={quote(query)}")
        return reply["data"]["result"]
    await _until("trash's lag on auth's topic measured", measured)
    try:
        await asyncio.to_thread(stack.stop_service, "trash")
    except CannotControl as exc:
        pytest.skip(str(exc))
    try:
        for _ in range(3):
            await login(gateway, stack.smtp_sink_url)

        async def pending():
            alerts = (await _get(http, f"{prometheus}/api/v1/alerts"))["data"]["alerts"]
            # the alert's value is the lag at its last evaluation, which may predate the scrape
            # that saw all three sign-ups: wait for an evaluation that counts them
            return [a for a in alerts if a["labels"]["alertname"] == "OsmcloudConsumerLagGrowing"
                    and a["labels"]["group"] == group and float(a["value"]) >= 3]

        (alert,) = await _until("OsmcloudConsumerLagGrowing pending for trash's group, lag >= 3", pending)
        assert alert["state"] == "pending"  # `for: 10m`
    finally:
        await asyncio.to_thread(stack.start_service, "trash")
