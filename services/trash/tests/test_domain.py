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
