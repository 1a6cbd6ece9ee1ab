from datetime import UTC, datetime

import pytest

from osmcloud_common.events import STORAGE_FACTOR, Entitlement
from osmcloud_files.domain import restore_quota
from osmcloud_files.errors import NotAllowed
from osmcloud_files.storage_rule import RECORD_BYTES, bytes_to_free, protected_ids, take_oldest, version_cost

MB = 1024 * 1024
START = Entitlement(plan="start", quota_bytes=5 * MB, max_file_bytes=2 * MB, max_files=10_000,
                    allowed_types=["FAVOURITES", "GLOBAL", "PROFILE", "OSM_EDITS", "OSM_NOTES"])


def test_every_version_costs_its_size_plus_a_record_markers_included():
    assert version_cost(1000) == 1000 + RECORD_BYTES
    assert version_cost(0) == RECORD_BYTES  # a flood of empty versions is bounded too
    assert version_cost(-1) == RECORD_BYTES  # a delete marker


def test_the_storage_limit_is_twice_the_quota_unless_the_plan_says_otherwise():
    assert START.storage_limit == STORAGE_FACTOR * 5 * MB == 10 * MB
    assert START.model_copy(update={"storage_limit_bytes": 7}).storage_limit == 7


def test_a_change_frees_what_it_put_above_the_limit_and_no_more():
    assert bytes_to_free(stored=9 * MB, limit=10 * MB, added=MB) == 0
    assert bytes_to_free(stored=11 * MB, limit=10 * MB, added=MB) == MB
    assert bytes_to_free(stored=10 * MB + 5, limit=10 * MB, added=MB) == 5
    # above the limit for another reason (a lowered plan): the change frees what it added
    assert bytes_to_free(stored=900 * MB, limit=10 * MB, added=MB) == MB


def test_twenty_uploads_to_one_name_keep_at_most_the_limit():
    """The attack of issue 16, replayed on the rule: 20 x 1 MB to one name on Start."""
    stored, versions = 0, []  # oldest first
    for i in range(20):
        versions.append({"_id": str(i), "size": MB})
        stored += version_cost(MB)
        need = bytes_to_free(stored, START.storage_limit, version_cost(MB))
        old = [v for v in versions if v["_id"] != str(i)]  # the head is protected
        chosen, freed = take_oldest(old, need)
        versions = [v for v in versions if v not in chosen]
        stored -= freed
        assert stored <= START.storage_limit
    assert versions[-1]["_id"] == "19" and len(versions) == 9  # 9 MB + records within 10 MB


def test_take_oldest_stops_once_enough_is_freed():
    candidates = [{"_id": "a", "size": 10}, {"_id": "b", "size": 10}, {"_id": "c", "size": 10}]
    chosen, freed = take_oldest(candidates, 11 + RECORD_BYTES)
    assert [v["_id"] for v in chosen] == ["a", "b"] and freed == 20 + 2 * RECORD_BYTES
    assert take_oldest(candidates, 0) == ([], 0)


def test_a_trashed_file_keeps_its_marker_and_what_a_restore_brings_back():
    marker = {"version_id": "m", "deleted": True}
    assert protected_ids(marker, {"_id": "v2"}) == {"m", "v2"}
    assert protected_ids({"version_id": "v3", "deleted": False}, {"_id": "v3"}) == {"v3"}
    assert protected_ids(None, None) == set()


def test_restores_in_grace_take_any_type_within_the_lapsed_quota():
    grace = START.model_copy(update={"grace_until": datetime(2030, 1, 1, tzinfo=UTC), "grace_quota_bytes": 3000 * MB})
    assert restore_quota(grace, "GPX") == (3000 * MB, "grace_quota_bytes")
    assert restore_quota(START, "FAVOURITES") == (5 * MB, "quota_bytes")
    with pytest.raises(NotAllowed):
        restore_quota(START, "GPX")  # on Start (no grace) a type Start lacks stays in the trash
    with pytest.raises(NotAllowed):
        restore_quota(None, "FAVOURITES")
