"""The metrics an operator watches (docs/observability.md), on fakes: refusals by reason, the
outbox backlog and its age, dead letters, every consumer group's lag."""

from types import SimpleNamespace

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from osmcloud_common.errors import ApiError
from osmcloud_common.http import REGISTRY_KEY, create_app
from osmcloud_common.kafka import EventConsumer, LagMonitor
from osmcloud_common.metrics import counter_function, gauge_function
from osmcloud_common.osmand import OsmandError
from osmcloud_common.outbox import OutboxRelay, new_document_with_events


def _load_outbox_fakes():
    """The relay fakes of test_outbox.py (tests are imported by path, not as a package)."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("_outbox_fakes", Path(__file__).with_name("test_outbox.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_fakes = _load_outbox_fakes()
FakeCollection, FlakyProducer, _entry = _fakes.FakeCollection, _fakes.FlakyProducer, _fakes._entry


def _sample(text: str, name: str, **labels) -> float | None:
    """The value of NAME{labels} in a Prometheus text exposition, or None."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


async def test_refusals_are_counted_by_reason_and_a_translation_keeps_the_original_reason():
    app = create_app("demo")

    async def quota(request):
        raise ApiError("full", code="quota_exceeded", status=413)

    async def compat(request):
        raise OsmandError(108, "full").translated_from(ApiError("full", code="quota_exceeded", status=413))

    app.router.add_post("/api/upload", quota)
    app.router.add_post("/userdata/upload-file", compat)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        assert (await client.post("/api/upload")).status == 413
        assert (await client.post("/userdata/upload-file")).status == 400
        text = await (await client.get("/metrics")).text()
    finally:
        await client.close()
    assert _sample(text, "http_refusals_total", method="POST", route="/api/upload", reason="quota_exceeded") == 1
    assert _sample(text, "http_refusals_total", method="POST", route="/userdata/upload-file",
                   reason="quota_exceeded") == 1
    assert _sample(text, "http_requests_total", method="POST", route="/api/upload", status="413") == 1


class NamedCollection(FakeCollection):
    name = "heads"


async def test_outbox_backlog_is_known_while_kafka_is_away_and_empties_once_relayed():
    collection = NamedCollection([new_document_with_events({"_id": 1}, [_entry()]),
                                  new_document_with_events({"_id": 2}, [_entry()]), {"_id": 3}])
    relay = OutboxRelay(FlakyProducer(fail_first=1), [collection])
    assert relay.backlog() == {}
    try:
        await relay.flush()
    except ConnectionError:
        pass
    pending, age = relay.backlog()["heads"]
    assert pending == 2 and 0 <= age < 5
    assert await relay.flush() == 2
    assert relay.backlog()["heads"] == (0, 0.0)


async def test_the_oldest_pending_age_is_kept_across_scans():
    collection = NamedCollection([new_document_with_events({"_id": 1}, [_entry()])])
    relay = OutboxRelay(FlakyProducer(fail_first=3), [collection])
    for _ in range(2):
        try:
            await relay.flush()
        except ConnectionError:
            pass
    relay._pending_since["heads"][1] -= 100  # first seen 100 s earlier
    assert relay.backlog()["heads"][1] >= 100
    try:
        await relay.flush()  # a third scan finds it still pending: its first sighting stays
    except ConnectionError:
        pass
    assert relay.backlog()["heads"][1] >= 100


class FailingDeadLetters:
    def __init__(self):
        self.docs = []

    async def insert_one(self, doc):
        self.docs.append(doc)


async def test_dead_letters_are_counted_by_event_type():
    database = {"processed_events": None, "dead_letters": FailingDeadLetters()}
    consumer = EventConsumer(bootstrap="x", topic_prefix="p.", group_id="p.trash", handlers={}, database=database)
    await consumer._handle_message(SimpleNamespace(value=b"not json", offset=7, headers=()))
    assert consumer.dead_lettered == {"unreadable": 1} and len(database["dead_letters"].docs) == 1  # no handlers here
    registry = CollectorRegistry()
    counter_function(registry, "events_dead_lettered", "d",
                     lambda: (((consumer.group_id, t), n) for t, n in consumer.dead_lettered.items()),
                     ("group", "event_type"))
    text = generate_latest(registry).decode()
    assert _sample(text, "events_dead_lettered_total", group="p.trash", event_type="unreadable") == 1


class FakeAdmin:
    async def list_consumer_groups(self):
        return [("p.trash", "consumer"), ("p.files", "consumer"), ("other.app", "consumer")]

    async def list_consumer_group_offsets(self, group):
        from aiokafka.structs import OffsetAndMetadata, TopicPartition
        if group == "p.trash":
            return {TopicPartition("p.files", 0): OffsetAndMetadata(5, ""),
                    TopicPartition("p.files", 1): OffsetAndMetadata(-1, "")}  # nothing committed yet
        if group == "p.files":
            return {TopicPartition("p.trash", 0): OffsetAndMetadata(9, "")}
        raise AssertionError(f"asked for a group of another deployment: {group}")


class FakeEnds:
    """A consumer's view of the topics: two partitions each, 12 events in each, the first 2 of
    them gone by retention."""

    def partitions_for_topic(self, topic):
        return {0, 1}

    async def end_offsets(self, partitions):
        return {tp: 12 for tp in partitions}

    async def beginning_offsets(self, partitions):
        return {tp: 2 for tp in partitions}


async def test_lag_is_measured_for_every_group_of_the_deployment_per_partition():
    monitor = LagMonitor("x", "p.")
    await monitor.measure_once(FakeAdmin(), FakeEnds())
    # partition 1 of each topic has no commit of the group yet: all its events count
    assert monitor.lag == {("p.trash", "p.files", 0): 7, ("p.trash", "p.files", 1): 10,
                           ("p.files", "p.trash", 0): 3, ("p.files", "p.trash", 1): 10}
    assert monitor.measured_at > 0
    registry = CollectorRegistry()
    gauge_function(registry, "kafka_consumer_lag", "lag", lambda: (((g, t, str(p)), n) for (g, t, p), n in
                                                                  monitor.lag.items()), ("group", "topic", "partition"))
    text = generate_latest(registry).decode()
    assert _sample(text, "kafka_consumer_lag", group="p.trash", topic="p.files", partition="0") == 7


def test_a_service_exposes_every_operator_metric():
    """The names docs/observability.md and deploy/prometheus rely on, on a real service app
    (no dependency needs to be up to scrape /metrics)."""
    from osmcloud_common.runtime import Runtime
    from osmcloud_common.settings import ServiceSettings

    runtime = Runtime(ServiceSettings(service_name="demo", kafka_bootstrap="127.0.0.1:1",
                                      mongo_url="mongodb://127.0.0.1:1"))
    app = runtime.create_app()
    assert isinstance(app, web.Application)
    families = {f.name for f in text_string_to_metric_families(generate_latest(app[REGISTRY_KEY]).decode())}
    # counters are named without _total in a family
    assert {"http_requests", "http_request_seconds", "http_refusals", "outbox_pending_documents",
            "outbox_oldest_pending_seconds", "events_dead_lettered", "kafka_consumer_lag",
            "kafka_consumer_lag_measured_timestamp_seconds", "outbox_published_total",
            "events_handled_total"} <= families
