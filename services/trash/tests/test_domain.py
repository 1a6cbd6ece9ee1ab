from datetime import UTC, datetime

from osmcloud_trash.domain import expires_at, group_by_month


def test_items_expire_after_the_retention():
    assert expires_at(datetime(2026, 1, 31, 10, tzinfo=UTC), 30) == datetime(2026, 3, 2, 10, tzinfo=UTC)


def test_trash_is_grouped_by_month_newest_first():
    items = [{"name": n, "deleted_at": d} for n, d in [
        ("a", "2026-01-05T10:00:00+00:00"), ("b", "2026-02-01T00:00:00+00:00"), ("c", "2026-01-20T08:00:00+00:00")]]
    groups = group_by_month(items)
    assert [g["month"] for g in groups] == ["2026-02", "2026-01"]
    assert [i["name"] for i in groups[1]["items"]] == ["c", "a"]


from datetime import timedelta  # noqa: E402

from osmcloud_trash.domain import batch_payloads, chunks, is_due, purge_claim, purge_lag_seconds  # noqa: E402

ITEM = {"_id": "t1", "user_id": "u1", "type": "GPX", "name": "tracks/a.gpx",
        "expires_at": datetime(2026, 3, 1, tzinfo=UTC)}


def test_an_item_is_due_from_its_expiry_on():
    assert not is_due(ITEM, datetime(2026, 2, 28, 23, 59, tzinfo=UTC))
    assert is_due(ITEM, datetime(2026, 3, 1, tzinfo=UTC))


def test_purge_lag_counts_only_lateness():
    assert purge_lag_seconds(ITEM, datetime(2026, 3, 1, 0, 0, 5, tzinfo=UTC)) == 5
    assert purge_lag_seconds(ITEM, datetime(2026, 2, 1, tzinfo=UTC)) == 0


def test_a_claim_holds_what_the_purge_event_needs():
    claim = purge_claim(ITEM, batch_id="b1", reason="expired", claimed_by="r1",
                        claimed_at=datetime(2026, 3, 1, tzinfo=UTC))
    assert claim["_id"] == "t1" and claim["user_id"] == "u1" and claim["action"] == "purge"
    [event] = batch_payloads([claim])
    assert (event.file_type, event.name, event.tombstone_version_id, event.reason) == (
        "GPX", "tracks/a.gpx", "t1", "expired")


def test_batch_events_do_not_depend_on_claim_order():
    claims = [purge_claim({**ITEM, "_id": i}, batch_id="b", reason="emptied", claimed_by="r",
                          claimed_at=datetime(2026, 3, 1, tzinfo=UTC) + timedelta(seconds=n))
              for n, i in enumerate(["c", "a", "b"])]
    assert [p.tombstone_version_id for p in batch_payloads(claims)] == ["a", "b", "c"]
    assert [p.tombstone_version_id for p in batch_payloads(list(reversed(claims)))] == ["a", "b", "c"]


def test_chunks():
    assert chunks([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert chunks([], 3) == []
