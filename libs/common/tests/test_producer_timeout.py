"""A publish whose acknowledgement never comes fails after the producer's timeout and drops
the producer, so the outbox relay retries with a fresh one instead of waiting for ever (the
chaos run saw files' relay publish nothing more after Kafka was SIGKILLed and restarted)."""

import asyncio

import pytest

from osmcloud_common.kafka import KafkaProducer


class HangingProducer:
    """Accepts messages; Kafka never acknowledges them."""

    def __init__(self) -> None:
        self.stopped = False

    async def send(self, topic, value, key, headers):
        return asyncio.get_running_loop().create_future()  # never resolved

    async def send_and_wait(self, topic, value, key, headers):
        await asyncio.get_running_loop().create_future()

    async def stop(self) -> None:
        self.stopped = True


@pytest.mark.timeout(10)
@pytest.mark.parametrize("many", [True, False])
async def test_an_unacknowledged_publish_fails_in_bounded_time_and_starts_afresh(many):
    producer = KafkaProducer("127.0.0.1:1", client_id="test", publish_timeout=0.2)
    hanging = producer._producer = HangingProducer()
    with pytest.raises(asyncio.TimeoutError):
        if many:
            await producer.publish_many([("t", "k", "v", {})])
        else:
            await producer.publish("t", "k", "v")
    assert hanging.stopped and producer._producer is None  # the next publish connects anew
