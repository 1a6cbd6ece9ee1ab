from osmcloud_files.trash_reactions import versions_to_purge


def v(vid: str, ms: int, deleted: bool = False) -> dict:
    return {"_id": vid, "updated_ms": ms, "deleted": deleted}


def test_everything_up_to_the_purged_marker_goes():
    history = [v("t1", 300, True), v("b", 200), v("a", 100)]
    assert [x["_id"] for x in versions_to_purge(history, "t1")] == ["t1", "b", "a"]


def test_a_file_uploaded_again_keeps_its_newer_versions():
    history = [v("c", 400), v("t1", 300, True), v("b", 200), v("a", 100)]
    assert [x["_id"] for x in versions_to_purge(history, "t1")] == ["t1", "b", "a"]


def test_an_older_marker_takes_only_what_came_before_it():
    history = [v("t2", 500, True), v("r", 400), v("t1", 300, True), v("a", 100)]
    assert [x["_id"] for x in versions_to_purge(history, "t1")] == ["t1", "a"]


def test_a_marker_already_purged_leaves_nothing_to_do():
    assert versions_to_purge([v("c", 400)], "t1") == []
