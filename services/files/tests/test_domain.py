import pytest

from osmcloud_common.errors import BadRequest
from osmcloud_common.events import Entitlement
from osmcloud_files.domain import (
    check_backup_enabled,
    check_may_upload,
    decode_cursor,
    encode_cursor,
    expected_head,
    feed_horizon,
    growth_to_reserve,
    head_after_removal,
    live_version_before,
    next_update_ms,
    parse_file_ref,
    storage_breakdown,
    upload_need,
)
from osmcloud_files.errors import (
    BackupDisabled,
    FileCountExceeded,
    FileTooLarge,
    InvalidInput,
    NotAllowed,
    QuotaExceeded,
    VersionConflict,
)
from osmcloud_files.model import FileHead, Head, Version
from osmcloud_files.native_errors import api_error
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
    with pytest.raises(InvalidInput) as info:
        parse_file_ref("u", file_type, name)
    assert api_error(info.value).status == 400


def test_plan_rules_for_uploads():
    with pytest.raises(NotAllowed) as no_plan:
        check_may_upload(None, "FAVOURITES")
    assert "Start" in no_plan.value.message and "Pro" in no_plan.value.message
    assert api_error(no_plan.value).status == 403 and no_plan.value.code == "no_plan"
    with pytest.raises(NotAllowed) as pro_only:
        check_may_upload(START, "GPX")
    assert "Pro plan" in pro_only.value.message
    check_may_upload(START, "FAVOURITES")
    check_may_upload(PRO, "GPX")


def test_uploads_during_grace_name_the_grace_period():
    from datetime import UTC, datetime
    grace = START.model_copy(update={"grace_until": datetime(2027, 7, 1, tzinfo=UTC)})
    with pytest.raises(NotAllowed) as info:
        check_may_upload(grace, "GPX")
    assert info.value.code == "grace_period" and "grace period" in info.value.message
    check_may_upload(grace, "FAVOURITES")


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


# ---------------------------------------------------------------- reservations
def test_a_declared_body_reserves_only_what_it_adds():
    need = upload_need(1000, 0, True, START, 10**9)
    assert (need.bytes, need.files, need.limit) == (1000, 1, 2_000_000)
    replacing = upload_need(1000, 1500, False, START, 10**9)
    assert (replacing.bytes, replacing.files) == (0, 0)  # a smaller replacement frees space
    assert upload_need(1000, 400, False, START, 10**9).bytes == 600
    assert upload_need(None, 0, True, PRO, 50_000_000).bytes == 0  # chunked: reserves as it streams
    assert upload_need(None, 0, True, PRO, 50_000_000).limit == 50_000_000
    with pytest.raises(FileTooLarge) as too_big:
        upload_need(2_000_001, 0, True, START, 10**9)
    assert too_big.value.code == "file_too_large"


def test_a_streamed_body_reserves_in_steps_up_to_the_per_file_limit():
    step, limit = 100, 1000
    assert growth_to_reserve(received=50, old_size=0, reserved=0, step=step, limit=limit) == 100
    assert growth_to_reserve(received=90, old_size=0, reserved=100, step=step, limit=limit) == 0
    assert growth_to_reserve(received=101, old_size=0, reserved=100, step=step, limit=limit) == 100
    assert growth_to_reserve(received=960, old_size=0, reserved=900, step=step, limit=limit) == 100
    assert growth_to_reserve(received=999, old_size=0, reserved=950, step=step, limit=limit) == 50  # the cap
    assert growth_to_reserve(received=300, old_size=250, reserved=0, step=step, limit=limit) == 100  # replaces 250
    assert growth_to_reserve(received=200, old_size=250, reserved=0, step=step, limit=limit) == 0


def test_refusals_say_quota_and_name_the_limits():
    error = api_error(QuotaExceeded(500, 4_900_000, 5_000_000))
    assert error.status == 413 and error.code == "quota_exceeded" and "quota" in error.message
    assert error.body()["error"] == {"code": "quota_exceeded", "quota_bytes": 5_000_000, "used_bytes": 4_900_000,
                                     "message": "storage quota exceeded: the file needs 500 bytes but only "
                                                "100000 of 5000000 bytes are free"}
    files_error = api_error(FileCountExceeded(10, 10))
    assert files_error.status == 413 and "quota" in files_error.message and files_error.details["max_files"] == 10
    check_backup_enabled("GPX", ["FAVOURITES"])
    with pytest.raises(BackupDisabled) as off:
        check_backup_enabled("FAVOURITES", ["FAVOURITES"])
    assert off.value.code == "backup_disabled" and "backup-types/FAVOURITES" in off.value.message
    assert api_error(off.value).status == 409


def test_the_conflict_rule_of_uploads():
    live = FileHead.from_doc({"_id": "u/GPX/a.gpx", "user_id": "u", "type": "GPX", "name": "a.gpx",
                              "category": "my_places",
                              "head": {"version_id": "v1", "size": 3, "updated_ms": 1, "deleted": False}})
    assert expected_head(None, None, False) is None
    assert expected_head(live, "v1", False) == "v1"
    assert expected_head(live, None, True) == "v1"  # OsmAnd's upload-file: always over the head
    trashed = FileHead.from_doc({**live.to_doc(), "head": {**live.to_doc()["head"], "deleted": True}})
    assert expected_head(trashed, None, False) == "v1"
    with pytest.raises(VersionConflict) as exists:
        expected_head(live, None, False)
    answer = api_error(exists.value)
    assert answer.status == 409 and answer.code == "version_conflict" and "overwrite=true" in answer.message
    assert answer.details["head"]["version_id"] == "v1"
    with pytest.raises(VersionConflict) as stale:
        expected_head(None, "v0", False)
    assert api_error(stale.value).details == {"head": None}


# ---------------------------------------------------------------- removing a version
def _v(vid, deleted=False, size=10):
    return Version("u", "GPX", "a.gpx", Head(vid, -1 if deleted else size, None, 1, None, None, deleted, None),
                   None if deleted else f"users/u/{vid}", None, None)


def test_removing_the_head_falls_back_to_the_version_before_it():
    history = [_v("c"), _v("b", deleted=True), _v("a")]
    assert head_after_removal(history, "c").id == "b"  # a delete marker, as on the reference server
    assert head_after_removal([_v("a")], "a") is None
    assert live_version_before(history, "b").id == "a"
    assert live_version_before([_v("b", deleted=True)], "b") is None


# ---------------------------------------------------------------- storage page
def test_storage_breakdown_per_category_and_type():
    page = storage_breakdown([("FAVOURITES", 100), ("FAVOURITES", 50), ("GLOBAL", 7), ("GPX", 1000)], 1157, 4,
                             START.model_dump(), ["GLOBAL"])
    categories = {c["category"]: (c["used_bytes"], c["file_count"]) for c in page["categories"]}
    assert categories == {"settings": (7, 1), "my_places": (1150, 3), "resources": (0, 0)}
    types = {t["type"]: t for t in page["types"]}
    assert (types["FAVOURITES"]["used_bytes"], types["FAVOURITES"]["file_count"]) == (150, 2)
    assert types["GLOBAL"]["backup_enabled"] is False and types["GPX"]["allowed_by_plan"] is False
    assert page["free_bytes"] == 5_000_000 - 1157 and page["plan"] == "start"
    assert storage_breakdown([], 0, 0, None, [])["quota_bytes"] == 0


# ---------------------------------------------------------------- changes feed
def test_cursors_are_opaque_and_checked():
    assert decode_cursor(None) == 0 and decode_cursor("") == 0
    assert decode_cursor(encode_cursor(12345)) == 12345
    assert not encode_cursor(7).isdigit()
    for bad in ("12", "c1.!!", "c1." + "LTE", "xyz"):
        with pytest.raises(InvalidInput):
            decode_cursor(bad)


def test_the_feed_stops_below_changes_still_being_written():
    assert feed_horizon(10, []) == 10
    assert feed_horizon(10, [7, 9]) == 7


# ---------------------------------------------------------------- typed heads and versions
def test_documents_survive_a_round_trip_through_the_typed_values_with_fields_they_do_not_name():
    from datetime import UTC, datetime
    version = {"_id": "v1", "version_id": "v1", "user_id": "u", "type": "GPX", "name": "a.gpx",
               "blob_key": "users/u/v1", "size": 5, "checksum": "sha256:00", "updated_ms": 7, "client_ms": None,
               "device_id": "d", "deleted": False, "seq": 3, "op": "o", "created_at": datetime(2026, 1, 1, tzinfo=UTC),
               "device_num": 4, "zip_size": 3, "seq_block": "0"}
    assert Version.from_doc(version).to_doc() == version
    head_doc = {"_id": "u/GPX/a.gpx", "user_id": "u", "type": "GPX", "name": "a.gpx", "category": "my_places",
                "head": {"version_id": "v2", "size": 5, "checksum": None, "updated_ms": 8, "client_ms": None,
                         "device_id": "d", "deleted": False, "seq": 4, "restored_from": "m1"},
                "_usage_pending": [{"op": "o", "bytes": 5, "files": 1, "stored": 261}]}
    typed = FileHead.from_doc(head_doc)
    assert typed.to_doc() == head_doc and typed.head is not None and typed.head.restored_from == "m1"
    assert typed.pending_of(frozenset({"o"})) == head_doc["_usage_pending"] and typed.pending_of(frozenset()) == []


def test_feed_blocks_name_every_change_number_of_a_window_and_no_more():
    from osmcloud_files.feed_blocks import FEED_BLOCK, feed_block, feed_blocks
    for after, upto in ((0, 0), (0, 1), (0, 99), (0, 100), (99, 100), (100, 101), (5, 250), (199, 1000), (7, 3)):
        assert feed_blocks(after, upto) == sorted({feed_block(s) for s in range(after + 1, upto + 1)},
                                                  key=int), (after, upto)
    assert feed_block(FEED_BLOCK - 1) == "0" and feed_block(FEED_BLOCK) == "1"


def test_a_feed_window_ends_at_a_block_end_when_that_keeps_half_of_its_numbers_or_more():
    from osmcloud_files.feed_blocks import FEED_BLOCK, window_end
    assert window_end(0, 200) == 199 and window_end(199, 200) == 399 and window_end(199, 1000) == 1199
    assert window_end(250, 200) == 399  # a cursor inside a block: the next window ends at a block's end
    assert window_end(150, 100) == 250 and window_end(0, 1) == 1  # a block's end would keep too few
    for after in (0, 1, 98, 99, 100, 150, 199, 1234):
        for width in (1, 2, 50, 99, 100, 101, 150, 200, 1000, 2000):
            end = window_end(after, width)
            assert after + width / 2 <= end <= after + width, (after, width)
            assert end == after + width or (end + 1) % FEED_BLOCK == 0, (after, width)
