"""The chaos command's invariants (osmcloud_localstack.invariants) hold on a consistent
snapshot and each one reports a violation planted in it — so they can fail."""

import copy

import pytest

from osmcloud_localstack.invariants import (
    Book,
    FileClaim,
    Outcome,
    RequestRecord,
    Snapshot,
    account_erasure,
    acknowledged_outcomes,
    answers_outside_faults,
    blobs_match_versions,
    check_all,
    effects_once,
    idempotent_calls_retried,
    osmand_status,
    outboxes_drained,
    redelivered,
    sha256_of,
    trash_matches_deletes,
    usage_matches_versions,
)

U = "u1"
LIVE_SUM = sha256_of(b"hello")


def version(vid, name, size, deleted=False, checksum=None):
    return {"_id": vid, "user_id": U, "type": "FAVOURITES", "name": name, "size": size, "deleted": deleted,
            "checksum": checksum, "blob_key": None if deleted else f"users/{U}/{vid}"}


def head(name, vid, size, deleted=False, checksum=None):
    return {"_id": f"{U}/FAVOURITES/{name}", "user_id": U, "type": "FAVOURITES", "name": name,
            "head": {"version_id": vid, "size": size, "deleted": deleted, "checksum": checksum}}


def consistent() -> tuple[Snapshot, Book]:
    """a.gpx live (two versions), b.gpx in the trash, c.gpx purged; usage 5 bytes in 1 file."""
    snap = Snapshot(
        heads=[head("a.gpx", "a2", 5, checksum=LIVE_SUM), head("b.gpx", "bt", -1, deleted=True)],
        versions=[version("a1", "a.gpx", 3, checksum="sha256:old"), version("a2", "a.gpx", 5, checksum=LIVE_SUM),
                  version("b1", "b.gpx", 7, checksum="sha256:b"), version("bt", "b.gpx", -1, deleted=True)],
        accounts=[{"_id": U, "used_bytes": 5, "file_count": 1, "reserved_bytes": 0, "reserved_files": 0,
                   "committed_bytes": 5, "committed_files": 1, "ops": {}, "op_count": 0, "usage_seq": 4}],
        trash_items=[{"_id": "bt", "user_id": U, "type": "FAVOURITES", "name": "b.gpx"}],
        billing_accounts=[{"_id": U, "usage": {"sequence": 4, "used_bytes": 5, "file_count": 1}}],
        blobs={f"users/{U}/a1": 3, f"users/{U}/a2": 5, f"users/{U}/b1": 7},
        events=[("e1", b'{"id":"e1"}'), ("e1", b'{"id":"e1"}'), ("e2", b'{"id":"e2"}')],
        downloads={f"{U}/FAVOURITES/a.gpx": LIVE_SUM},
    )
    book = Book(users={U})
    book.claim(FileClaim(U, "FAVOURITES", "a.gpx", [Outcome("live", LIVE_SUM, "a2")], {"a1", "a2"}))
    book.claim(FileClaim(U, "FAVOURITES", "b.gpx", [Outcome("deleted", version_id="bt")], {"b1", "bt"}))
    book.claim(FileClaim(U, "FAVOURITES", "c.gpx", [Outcome("purged")], {"c1", "ct"}))
    return snap, book


def test_a_consistent_snapshot_has_no_violation():
    snap, book = consistent()
    assert check_all(snap, book) == {name: [] for name in check_all(snap, book)}
    assert redelivered(snap) == 1  # e1 twice: allowed (at least once), only counted


def test_an_acknowledged_upload_that_is_lost_is_reported():
    snap, book = consistent()
    snap.heads[0]["head"]["checksum"] = "sha256:other"
    assert "a.gpx: acknowledged as live" in acknowledged_outcomes(snap, book)[0]


def test_a_download_with_another_checksum_is_reported():
    snap, book = consistent()
    snap.downloads[f"{U}/FAVOURITES/a.gpx"] = sha256_of(b"corrupt")
    assert "downloading it gave" in acknowledged_outcomes(snap, book)[0]


def test_a_deleted_file_that_comes_back_is_reported():
    snap, book = consistent()
    snap.heads[1]["head"] = {"version_id": "b1", "size": 7, "deleted": False, "checksum": "sha256:b"}
    assert "came back" in acknowledged_outcomes(snap, book)[0]


def test_a_purged_file_whose_blob_stays_is_reported():
    snap, book = consistent()
    snap.blobs[f"users/{U}/c1"] = 4
    assert "still there" in acknowledged_outcomes(snap, book)[0]


def test_an_uncertain_call_accepts_either_outcome_but_not_a_third():
    snap, book = consistent()
    book.claims[f"{U}/FAVOURITES/b.gpx"].outcomes = [Outcome("live", "sha256:b"), Outcome("deleted", version_id="bt")]
    assert acknowledged_outcomes(snap, book) == []
    book.claims[f"{U}/FAVOURITES/b.gpx"].outcomes = [Outcome("live", "sha256:b"), Outcome("purged")]
    assert len(acknowledged_outcomes(snap, book)) == 1


def test_usage_that_differs_from_the_live_versions_is_reported():
    snap, book = consistent()
    snap.accounts[0]["used_bytes"] = 12  # e.g. a purge's decrement lost, or an upload counted twice
    snap.accounts[0]["committed_bytes"] = 12
    assert "usage 12 bytes" in usage_matches_versions(snap)[0]


def test_a_reservation_left_behind_is_reported():
    snap, book = consistent()
    snap.accounts[0].update(reserved_bytes=100, committed_bytes=105, op_count=1, ops={"op1": {"kind": "upload"}})
    found = usage_matches_versions(snap)
    assert any("reservations not drained" in f and "op1" in f for f in found)
    assert any("committed 105" in f for f in found)


def test_a_version_without_its_blob_and_an_orphan_blob_are_reported():
    snap, book = consistent()
    del snap.blobs[f"users/{U}/a1"]
    snap.blobs[f"users/{U}/stray"] = 9
    found = blobs_match_versions(snap)
    assert any("a1" in f and "has no blob" in f for f in found)
    assert any("stray belongs to no version" in f for f in found)


def test_a_head_naming_a_missing_version_is_reported():
    snap, book = consistent()
    snap.versions = [v for v in snap.versions if v["_id"] != "a2"]
    snap.blobs.pop(f"users/{U}/a2")
    assert any("names version a2" in f for f in blobs_match_versions(snap))


def test_a_delete_without_its_trash_item_is_reported():
    snap, book = consistent()
    snap.trash_items = []
    assert "has no trash item" in trash_matches_deletes(snap)[0]


def test_a_trash_item_of_a_live_file_is_reported():
    snap, book = consistent()
    snap.trash_items.append({"_id": "a1", "user_id": U, "type": "FAVOURITES", "name": "a.gpx"})
    assert "not the file's current delete marker" in trash_matches_deletes(snap)[0]


def test_an_unpublished_event_is_reported():
    snap, book = consistent()
    snap.pending_outbox = ["files.heads/u1/FAVOURITES/a.gpx"]
    assert outboxes_drained(snap) == ["unpublished events in files.heads/u1/FAVOURITES/a.gpx"]


@pytest.mark.parametrize("plant, expected", [
    (lambda s: s.events.append(("e2", b'{"id":"e2","other":1}')), "published with 2 different contents"),
    (lambda s: s.trash_items.append({"_id": "bt2", "user_id": U, "type": "FAVOURITES", "name": "b.gpx"}),
     "has 2 trash items"),
    (lambda s: s.billing_accounts[0]["usage"].update(used_bytes=10), "billing's usage 10 bytes"),
])
def test_an_effect_applied_twice_is_reported(plant, expected):
    snap, book = consistent()
    plant(snap)
    assert any(expected in f for f in effects_once(snap)), effects_once(snap)


def test_a_deleted_account_with_remains_is_reported():
    snap, book = consistent()
    book.deleted_users.add(U)
    snap.remains = {U: []}
    assert account_erasure(snap, book) == []
    snap.remains = {U: ["1 document(s) in trash.items"]}
    assert account_erasure(snap, book) == [f"deleted account {U} still has 1 document(s) in trash.items"]


def test_failures_outside_a_fault_window_and_non_503_inside_are_reported():
    book = Book()
    windows = [(10.0, 20.0)]
    book.requests = [
        RequestRecord("PUT", "/api/files/x", 11, 12, 503, True),    # inside, 503 JSON: allowed
        RequestRecord("GET", "/api/trash", 19, 21, 0, False, "refused"),  # overlaps, no answer: allowed
        RequestRecord("PUT", "/api/files/x", 12, 13, 502, False),   # inside, not 503 JSON
        RequestRecord("PUT", "/api/files/y", 13, 14, 503, False),   # inside, 503 without JSON
        RequestRecord("GET", "/api/files", 30, 31, 500, True),      # outside
        RequestRecord("GET", "/api/files", 32, 33, 0, False, "timeout"),  # outside, no answer
        RequestRecord("GET", "/api/files", 34, 35, 200, True),      # fine
        RequestRecord("POST", "/userdata/upload-file", 15, 16, 400, True, "", 503),  # OsmAnd's 503, inside
        RequestRecord("POST", "/userdata/delete-file", 16, 17, 400, True, "", 500),  # OsmAnd's 500, inside
        RequestRecord("POST", "/userdata/upload-file", 36, 37, 400, True, "", 503),  # OsmAnd's 503, outside
        RequestRecord("POST", "/userdata/upload-file", 38, 39, 400, True),  # a plain refusal: fine
    ]
    found = answers_outside_faults(book, windows)
    assert len(found) == 6, found
    assert "/userdata/delete-file: 400 errorCode 6 standing for 500 during a fault" in found[4]
    assert "/userdata/upload-file: 400 errorCode 6 standing for 503 outside" in found[5]
    assert "502 without JSON during a fault" in found[0]
    assert "503 without JSON during a fault" in found[1]
    assert "500 outside" in found[2] and "no answer (timeout) outside" in found[3]


def test_an_idempotent_call_that_failed_beside_a_live_replica_is_reported():
    book = Book(requests=[
        RequestRecord("GET", "/api/files/GPX/a.gpx", 11, 12, 503, True),       # not passed on
        RequestRecord("DELETE", "/api/files/GPX/b.gpx", 12, 13, 0, False, "reset"),  # no answer
        RequestRecord("PUT", "/api/files/GPX/c.gpx", 12, 13, 503, True),       # a streamed body: allowed
        RequestRecord("POST", "/api/trash/items/x/restore", 12, 13, 503, True),  # not files, a POST
        RequestRecord("GET", "/api/files", 13, 14, 200, True),                 # answered
        RequestRecord("GET", "/api/files", 30, 31, 503, True),                 # outside the window
    ])
    found = idempotent_calls_retried(book, (10.0, 20.0))
    assert len(found) == 2, found
    assert found[0].startswith("GET /api/files/GPX/a.gpx: 503") and "no answer (reset)" in found[1]


def test_osmand_try_later_is_read_as_the_status_it_stands_for():
    def answer(message):
        return {"error": {"errorCode": 6, "message": message}}
    upload = "/userdata/upload-file"
    assert osmand_status(upload, 400, answer("the service is not reachable right now; retry in 5 s")) == 503
    assert osmand_status("/userdata/upload-file", 400, answer("authentication is unavailable right now; retry")) == 503
    assert osmand_status("/userdata/upload-file", 400, answer("internal error (request 1); retry shortly")) == 500
    assert osmand_status("/userdata/upload-file", 400, answer("too many requests from this address")) == 429
    assert osmand_status("/userdata/upload-file", 400, {"error": {"errorCode": 106, "message": "gone"}}) == 0
    assert osmand_status("/api/files/x", 400, answer("not reachable")) == 0


def test_check_all_names_each_planted_violation_once():
    snap, book = consistent()
    planted = copy.deepcopy(snap)
    planted.pending_outbox = ["trash.batches/b1"]
    planted.trash_items = []
    found = {name: v for name, v in check_all(planted, book).items() if v}
    assert set(found) == {"outboxes drained", "deletes ↔ trash items"}
