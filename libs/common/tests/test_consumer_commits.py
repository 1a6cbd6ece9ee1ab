"""The consumer commits its offsets at most every `commit_seconds` (an offset commit costs the
broker more CPU than the events it covers), never before the effects, and commits what it
applied when the consumer stops."""

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace

from aiokafka.structs import TopicPartition

from osmcloud_common.events import StorageUsageChanged, make_event
from osmcloud_common.kafka import EventConsumer

from .test_batch_consumer import FakeDatabase

TP = TopicPartition("osmcloud.files", 0)


def usage_message(seq: int) -> SimpleNamespace:
    event = make_event(StorageUsageChanged(sequence=seq, used_bytes=1, file_count=1), user_id="u", producer="test",
                       occurred_at=datetime(2026, 3, 1, tzinfo=UTC))
    return SimpleNamespace(value=event.to_json().encode(), headers=[], offset=seq)


class FakeKafkaConsumer:
    """Hands out the queued batches one per poll (an empty poll waits its timeout), records commits."""

    def __init__(self, batches):
        self.batches, self.commits, self.applied_at_commit = list(batches), [], []
        self.applied = 0

    async def getmany(self, timeout_ms, max_records):
        if self.batches:
            return {TP: self.batches.pop(0)}
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    def assignment(self):
        return {TP}

    async def commit(self, offsets):
        self.commits.append(dict(offsets))
        self.applied_at_commit.append(self.applied)


def consumer_with(commit_seconds: float, kafka_consumer: FakeKafkaConsumer) -> EventConsumer:
    async def handler(events):
        kafka_consumer.applied += len(events)
    return EventConsumer(bootstrap="-", topic_prefix="osmcloud.", group_id="g", handlers={},
                         batch_handlers={"storage-usage-changed": handler}, database=FakeDatabase(),
                         commit_seconds=commit_seconds)


async def _run_for(consumer: EventConsumer, fake: FakeKafkaConsumer, seconds: float) -> None:
    task = asyncio.create_task(consumer._consume(fake))
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_batches_within_the_interval_share_one_commit_after_their_effects():
    fake = FakeKafkaConsumer([[usage_message(1)], [usage_message(2)], [usage_message(3)]])
    consumer = consumer_with(0.2, fake)
    await _run_for(consumer, fake, 0.1)
    assert fake.applied == 3 and fake.commits == []  # applied, not yet committed
    await _run_for(consumer, fake, 0.3)
    assert fake.commits == [{TP: 4}] and fake.applied_at_commit == [3]


async def test_zero_commits_after_every_batch_as_before():
    fake = FakeKafkaConsumer([[usage_message(1)], [usage_message(2)]])
    consumer = consumer_with(0, fake)
    await _run_for(consumer, fake, 0.05)
    assert fake.commits == [{TP: 2}, {TP: 3}]


async def test_a_partition_no_longer_assigned_is_not_committed():
    fake = FakeKafkaConsumer([[usage_message(1)]])
    fake.assignment = lambda: set()  # a rebalance gave it to another member
    consumer = consumer_with(0, fake)
    await _run_for(consumer, fake, 0.05)
    assert fake.applied == 1 and fake.commits == [] and consumer._uncommitted == {}
