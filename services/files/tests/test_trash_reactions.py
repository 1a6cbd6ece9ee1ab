from osmcloud_files.trash_reactions import pruned_payloads, purge_plan, versions_to_purge


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


def hv(user: str, name: str, vid: str, ms: int, size: int = 10, file_type: str = "GPX") -> dict:
    return {"_id": vid, "user_id": user, "type": file_type, "name": name, "updated_ms": ms, "size": size}


def test_a_batch_plans_each_file_from_its_own_history():
    histories = {("u", "GPX", "a"): [hv("u", "a", "a1", 1), hv("u", "a", "ta", 2)],
                 ("u", "GPX", "b"): [hv("u", "b", "b1", 1), hv("u", "b", "tb", 2), hv("u", "b", "b2", 3)],
                 ("v", "GPX", "a"): [hv("v", "a", "x1", 1), hv("v", "a", "tx", 2)]}
    plan = purge_plan([("u", "GPX", "a", "ta"), ("u", "GPX", "b", "tb"), ("v", "GPX", "a", "gone")], histories)
    assert {k: sorted(v["_id"] for v in vs) for k, vs in plan.items()} == {
        ("u", "GPX", "a"): ["a1", "ta"], ("u", "GPX", "b"): ["b1", "tb"]}  # b2 came later; v's marker is gone


def test_two_markers_of_one_file_in_a_batch_take_the_union_once():
    history = [hv("u", "a", "a1", 1), hv("u", "a", "t1", 2), hv("u", "a", "a2", 3), hv("u", "a", "t2", 4)]
    plan = purge_plan([("u", "GPX", "a", "t1"), ("u", "GPX", "a", "t2")], {("u", "GPX", "a"): history})
    assert sorted(v["_id"] for v in plan[("u", "GPX", "a")]) == ["a1", "a2", "t1", "t2"]


def test_a_redelivered_batch_plans_nothing():
    assert purge_plan([("u", "GPX", "a", "ta")], {}) == {}


def test_pruned_events_per_type_in_chunks_with_the_freed_bytes():
    victims = [hv("u", f"n{i}", f"v{i}", i, size=2) for i in range(5)]
    victims.append(hv("u", "m", "t", 9, size=-1, file_type="FAVOURITES"))
    payloads = pruned_payloads(victims, chunk=2)
    assert [(p.file_type, p.version_ids, p.freed_bytes) for p in payloads] == [
        ("FAVOURITES", ["t"], 0), ("GPX", ["v0", "v1"], 4), ("GPX", ["v2", "v3"], 4), ("GPX", ["v4"], 2)]
