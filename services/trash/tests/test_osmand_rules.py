import pytest

from osmcloud_trash.errors import MalformedEntries
from osmcloud_trash.osmand_compat import osmand_error
from osmcloud_trash.osmand_rules import (
    MAX_ENTRIES,
    FileState,
    TrashEntry,
    judge_without_item,
    newest_version,
    parse_entries,
    split_duplicates,
)

E = TrashEntry(name="tracks/a.gpx", type="GPX", updatetime=1_700_000_000_123)


def test_entries_are_read_as_the_app_sends_them():
    body = [{"name": "tracks/a.gpx", "type": "GPX", "updatetime": 1_700_000_000_123}]
    assert parse_entries(body) == [E]
    assert len(parse_entries([{"name": f"n{i}", "type": "GPX", "updatetime": i} for i in range(MAX_ENTRIES)])) == 50


def test_a_whole_number_written_with_a_fraction_is_that_integer():
    body = [{"name": "tracks/a.gpx", "type": "GPX", "updatetime": 1_700_000_000_123.0}]
    assert parse_entries(body) == [E]
    assert parse_entries([{"name": "a", "type": "GPX", "updatetime": 2**63 - 1}])[0].updatetime == 2**63 - 1


@pytest.mark.parametrize("body", [
    {"name": "x"},                                          # not an array
    [1],                                                    # not an object
    [{"type": "GPX", "updatetime": 1}],                     # no name
    [{"name": "", "type": "GPX", "updatetime": 1}],         # empty name
    [{"name": "a", "type": 7, "updatetime": 1}],            # type not a string
    [{"name": "a", "type": "GPX", "updatetime": "1"}],      # updatetime as a string
    [{"name": "a", "type": "GPX", "updatetime": 1.5}],      # not whole ms
    [{"name": "a", "type": "GPX", "updatetime": True}],     # a bool is no time
    [{"name": "a", "type": "GPX", "updatetime": -1}],
    [{"name": "a", "type": "GPX", "updatetime": 2**63}],    # beyond a Java long
])
def test_wrong_shapes_are_one_compat_400(body):
    with pytest.raises(MalformedEntries) as caught:
        parse_entries(body)
    answer = osmand_error(caught.value)
    assert answer.status == 400 and answer.body()["error"] == {"errorCode": 400, "message": caught.value.message}


def test_more_than_50_entries_refuse_the_whole_request():
    with pytest.raises(MalformedEntries) as caught:
        parse_entries([{"name": f"n{i}", "type": "GPX", "updatetime": i} for i in range(MAX_ENTRIES + 1)])
    assert "at most 50" in caught.value.message and "nothing was deleted" in caught.value.message


def test_a_repeated_entry_is_answered_once_as_deleted_then_already_missing():
    other = TrashEntry(name="b", type="GPX", updatetime=1)
    first, repeats = split_duplicates([E, other, TrashEntry(E.name, E.type, E.updatetime)])
    assert first == [E, other] and repeats == [E]


def test_newest_version_is_the_latest_updatetime():
    assert newest_version([{"updatetime": 5}, {"updatetime": 9}, {"updatetime": 7}]) == {"updatetime": 9}
    assert newest_version([]) is None


def test_no_file_at_all_is_already_missing():
    assert judge_without_item(E, FileState(None), purged_already=False).status == "already_missing"


def test_a_marker_purged_already_is_already_missing_even_while_files_still_has_it():
    newest = {"updatetime": E.updatetime, "deleted": True, "version_id": "t"}
    assert judge_without_item(E, FileState(newest), purged_already=True).status == "already_missing"


def test_a_live_file_is_not_trash():
    result = judge_without_item(E, FileState({"updatetime": E.updatetime + 5, "deleted": False}), purged_already=False)
    assert result.status == "skipped_not_trash" and result.message


def test_another_delete_marker_is_not_this_trash_entry():
    result = judge_without_item(E, FileState({"updatetime": E.updatetime + 5, "deleted": True}), purged_already=False)
    assert result.status == "skipped_not_trash" and str(E.updatetime + 5) in result.message


def test_a_marker_not_yet_in_the_trash_fails_so_the_app_retries():
    newest = {"updatetime": E.updatetime, "deleted": True, "version_id": "t"}
    assert judge_without_item(E, FileState(newest), purged_already=False).status == "failed"


def test_files_unreachable_fails_without_deleting():
    assert judge_without_item(E, None, purged_already=False).status == "failed"


def test_results_carry_the_entry_and_a_message_only_when_there_is_one():
    from osmcloud_trash.osmand_rules import EntryResult
    assert EntryResult(E, "deleted").to_json() == {"name": E.name, "type": "GPX", "updatetime": E.updatetime,
                                                   "status": "deleted"}
    assert EntryResult(E, "failed", "why").to_json()["message"] == "why"
