"""A batch of storage-usage-changed events keeps each account's newest figures only."""

from datetime import UTC, datetime

from osmcloud_billing.handlers import newest_usage
from osmcloud_common.events import StorageUsageChanged, make_event


def usage(user: str, sequence: int, used: int):
    return make_event(StorageUsageChanged(sequence=sequence, used_bytes=used, file_count=1), user_id=user,
                      producer="files", occurred_at=datetime(2026, 12, 5, tzinfo=UTC))


def test_each_account_keeps_its_highest_sequence_whatever_the_order():
    events = [usage("a", 2, 20), usage("b", 1, 100), usage("a", 5, 50), usage("a", 3, 30), usage("b", 1, 999)]
    kept = [(e.user_id, p.sequence, p.used_bytes) for e, p in newest_usage(events)]
    assert kept == [("a", 5, 50), ("b", 1, 100)]


def test_no_events_no_updates():
    assert newest_usage([]) == []
