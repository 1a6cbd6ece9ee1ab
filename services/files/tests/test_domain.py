import pytest

from osmcloud_common.errors import BadRequest, Forbidden, PayloadTooLarge
from osmcloud_common.events import Entitlement
from osmcloud_files.domain import check_may_upload, next_update_ms, parse_file_ref, reservation_for
from osmcloud_files.routes import _byte_range

START = Entitlement(plan="start", quota_bytes=5_000_000, max_file_bytes=2_000_000, max_files=10_000,
                    allowed_types=["FAVOURITES", "GLOBAL", "PROFILE", "OSM_EDITS", "OSM_NOTES"])
PRO = Entitlement(plan="pro", quota_bytes=3000 * 2**20)


def test_file_identity_and_category():
    ref = parse_file_ref("u", "GPX", "tracks/2024/x.gpx")
    assert ref.key == "u/GPX/tracks/2024/x.gpx" and ref.category == "my_places"


@pytest.mark.parametrize("file_type,name", [("NOPE", "a"), ("GPX", ""), ("GPX", "/abs"), ("GPX", "a/../b"),
                                            ("GPX", "a//b"), ("GPX", "a\x00b"), ("GPX", "x" * 1025)])
def test_bad_identities_are_400s(file_type, name):
    with pytest.raises(BadRequest):
        parse_file_ref("u", file_type, name)


def test_plan_rules_for_uploads():
    with pytest.raises(Forbidden) as no_plan:
        check_may_upload(None, "FAVOURITES")
    assert "Start" in no_plan.value.message and "Pro" in no_plan.value.message
    with pytest.raises(Forbidden) as pro_only:
        check_may_upload(START, "GPX")
    assert "Pro plan" in pro_only.value.message
    check_may_upload(START, "FAVOURITES")
    check_may_upload(PRO, "GPX")


def test_uploads_during_grace_name_the_grace_period():
    from datetime import UTC, datetime
    grace = START.model_copy(update={"grace_until": datetime(2027, 7, 1, tzinfo=UTC)})
    with pytest.raises(Forbidden) as info:
        check_may_upload(grace, "GPX")
    assert info.value.code == "grace_period" and "grace period" in info.value.message
    check_may_upload(grace, "FAVOURITES")


def test_reservations():
    assert reservation_for(100, START, 10**9) == 100
    assert reservation_for(None, START, 10**9) == 2_000_000
    assert reservation_for(None, PRO, 50_000_000) == 50_000_000
    with pytest.raises(PayloadTooLarge):
        reservation_for(2_000_001, START, 10**9)


def test_server_times_strictly_increase_per_file():
    assert next_update_ms(1000, None) == 1000
    assert next_update_ms(1000, 999) == 1000
    assert next_update_ms(1000, 1000) == 1001
    assert next_update_ms(1000, 5000) == 5001


def test_ranges():
    assert _byte_range("", 10) is None
    assert _byte_range("bytes=2-4", 10) == (2, 4)
    assert _byte_range("bytes=7-", 10) == (7, 9)
    assert _byte_range("bytes=-3", 10) == (7, 9)
    assert _byte_range("bytes=5-100", 10) == (5, 9)
    with pytest.raises(BadRequest):
        _byte_range("items=1-2", 10)
    with pytest.raises(Exception) as info:
        _byte_range("bytes=10-12", 10)
    assert info.value.status == 416
