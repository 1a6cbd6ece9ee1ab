"""OsmAnd's list-files entries and totals, the upload answer and the error mapping."""

from osmcloud_common.osmand import OsmandError
from osmcloud_files.errors import Busy, FileNotFound, InvalidName, NotInPlan, QuotaExceeded, VersionConflict
from osmcloud_files.osmand_files import file_entry, list_files_result, osmand_error, parse_types, upload_answer

F_FIELDS = {"userid", "id", "deviceid", "filesize", "type", "name", "updatetimems", "clienttimems", "zipSize"}


def version(name, ms, size=10, seq=1, deleted=False, file_type="GPX", **more):
    return {"_id": f"{name}-{ms}", "type": file_type, "name": name, "updated_ms": ms, "size": -1 if deleted else size,
            "deleted": deleted, "seq": seq, "client_ms": ms - 5, **more}


def test_an_entry_has_exactly_the_reference_fields_all_integers():
    entry = file_entry(version("a.gpx", 1000, size=100, seq=7, device_num=3, zip_size=40), user_num=12)
    assert set(entry) == F_FIELDS
    assert entry == {"userid": 12, "id": 7, "deviceid": 3, "filesize": 100, "type": "GPX", "name": "a.gpx",
                     "updatetimems": 1000, "clienttimems": 995, "zipSize": 40}


def test_defaults_for_versions_written_before_device_numbers_or_by_the_native_api():
    entry = file_entry({**version("a.gpx", 1000, size=100), "client_ms": None, "seq": None}, user_num=1)
    assert entry["deviceid"] == 0 and entry["clienttimems"] == 0 and entry["id"] == 0
    assert entry["zipSize"] == 100  # no gzip size known: its size


def test_a_delete_marker_has_sizes_minus_one():
    entry = file_entry(version("a.gpx", 1000, deleted=True, zip_size=None), user_num=1)
    assert entry["filesize"] == -1 and entry["zipSize"] == -1


def test_parse_types():
    assert parse_types(None) is None and parse_types("") is None and parse_types(" , ") is None
    assert parse_types("GPX,FAVOURITES, GPX") == ["GPX", "FAVOURITES"]


def test_list_is_newest_first_with_unique_files_identical_to_their_all_files_entries():
    versions = [version("a.gpx", 1000, size=10, seq=1, zip_size=5), version("a.gpx", 2000, size=20, seq=2, zip_size=8),
                version("b.gpx", 1500, size=30, seq=3, zip_size=9), version("b.gpx", 2500, deleted=True, seq=4),
                version("c.fav", 1200, size=7, seq=5, file_type="FAVOURITES")]
    result = list_files_result(versions, user_num=9, all_versions=True, maximum_account_size=5 * 1024 * 1024)
    assert [e["updatetimems"] for e in result["allFiles"]] == [2500, 2000, 1500, 1200, 1000]
    assert [(e["name"], e["updatetimems"]) for e in result["uniqueFiles"]] == [("a.gpx", 2000), ("c.fav", 1200)]
    for entry in result["uniqueFiles"]:
        assert entry in result["allFiles"]
    assert result["totalFiles"] == 2 and result["totalFileVersions"] == 4
    assert result["totalFileSize"] == 10 + 20 + 30 + 7 and result["totalZipSize"] == 5 + 8 + 9 + 7
    assert result["maximumAccountSize"] == 5 * 1024 * 1024 and result["userid"] == 9


def test_without_all_versions_totals_count_newest_versions_and_all_files_is_absent():
    versions = [version("a.gpx", 1000, size=10), version("a.gpx", 2000, size=20, seq=2)]
    result = list_files_result(versions, user_num=1, all_versions=False, maximum_account_size=0)
    assert "allFiles" not in result
    assert result["totalFileSize"] == 20 and result["totalFileVersions"] == 2 and result["totalFiles"] == 1


def test_upload_answer():
    head = {"size": 100, "updated_ms": 1234, "client_ms": None}
    assert upload_answer("GPX", "a.gpx", head, 40) == {"filesize": 100, "zipfilesize": 40, "updatetime": 1234,
                                                       "clienttime": 0, "type": "GPX", "name": "a.gpx",
                                                       "status": "ok"}


def test_errors_become_protocol_codes():
    over = osmand_error(QuotaExceeded(10, 0, 5), 5 * 1024 * 1024, "changed")
    assert isinstance(over, OsmandError) and over.error_code == 108 and over.reason == "quota_exceeded"
    # the app shows the figure between the prefix and the first '.'
    message = over.message
    prefix = "Maximum size of OsmAnd Cloud exceeded "
    assert message.startswith(prefix) and message[len(prefix):message.index(".")] == "5 MB"
    assert osmand_error(NotInPlan("needs Pro"), None, "changed").error_code == 102
    assert osmand_error(FileNotFound("gone"), None, "changed").error_code == 106
    assert osmand_error(InvalidName("bad name"), None, "changed").error_code == 400
    assert osmand_error(Busy(), None, "changed").error_code == 400
    changed = osmand_error(VersionConflict(None), None, "GPX/a.gpx changed meanwhile; retry")
    assert (changed.error_code, changed.message) == (400, "GPX/a.gpx changed meanwhile; retry")
