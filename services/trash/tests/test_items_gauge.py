"""The items-in-trash gauge is counted at most every ITEMS_GAUGE_SECONDS (a count reads
every item on FerretDB)."""

import pytest
from prometheus_client import CollectorRegistry

from osmcloud_trash.purge import Purger
from osmcloud_trash.settings import TrashSettings


class CountingStore:
    def __init__(self) -> None:
        self.counts, self.items = 0, 7

    async def count(self) -> int:
        self.counts += 1
        return self.items


def purger(seconds: float) -> tuple[Purger, CountingStore]:
    store = CountingStore()
    p = Purger(store, None, None, TrashSettings(items_gauge_seconds=seconds))  # type: ignore[arg-type]
    p.bind_metrics(CollectorRegistry())
    return p, store


def gauge(p: Purger) -> float:
    return p.in_trash._value.get()


@pytest.mark.parametrize(("seconds", "counts", "shown"), [(30, 1, 7), (0, 2, 9)])
async def test_the_gauge_is_counted_again_only_when_the_interval_has_passed(seconds, counts, shown):
    p, store = purger(seconds)
    await p._refresh_items_gauge()
    store.items = 9
    await p._refresh_items_gauge()
    assert store.counts == counts and gauge(p) == shown
