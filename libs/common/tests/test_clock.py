from datetime import UTC, datetime, timedelta

from osmcloud_common.clock import CLOCK_COLLECTION, CLOCK_DB, SharedTestClock


class FakeCollection:
    def __init__(self):
        self.doc = None

    async def find_one(self, query):
        return self.doc


def _clock():
    collection = FakeCollection()
    return SharedTestClock({CLOCK_DB: {CLOCK_COLLECTION: collection}}), collection


async def test_offset_moves_time_for_every_reader():
    clock, collection = _clock()
    await clock.refresh()
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=1)
    collection.doc = {"seconds": 30 * 86400.0}
    await clock.refresh()
    assert abs(clock.now() - (datetime.now(UTC) + timedelta(days=30))) < timedelta(seconds=1)


async def test_a_frozen_clock_stands_still_until_unfrozen():
    clock, collection = _clock()
    at = datetime(2027, 1, 1, 12, 0, 0, tzinfo=UTC)
    collection.doc = {"seconds": 0, "frozen_at": at.replace(tzinfo=None)}  # BSON dates may come back naive
    await clock.refresh()
    assert clock.now() == at
    collection.doc = {"seconds": 0}
    await clock.refresh()
    assert clock.now() > at - timedelta(days=400)
