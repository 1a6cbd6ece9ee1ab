from osmcloud_files.grace_rule import (
    REASON_FILE_SIZE,
    REASON_OVER_ALLOWANCE,
    REASON_TYPE,
    LiveFile,
    StartAllowance,
    decide,
    files_to_trash,
    grace_end_order,
)

MB = 1024 * 1024
START = StartAllowance(allowed_types=frozenset({"FAVOURITES", "GLOBAL", "PROFILE", "OSM_EDITS", "OSM_NOTES"}),
                       quota_bytes=5 * MB, max_file_bytes=2 * MB, max_files=10_000)


def f(file_type: str, name: str, size: int, changed_ms: int) -> LiveFile:
    return LiveFile(file_type, name, size, changed_ms)


def names(decisions):
    return [(d.name, reason) for d, reason in decisions]


def test_types_start_lacks_go_whatever_their_size_or_age():
    files = [f("GPX", "t.gpx", 10, 5), f("FAVOURITES", "fav", 10, 1), f("TTS_VOICE", "v", 0, 9)]
    assert names(files_to_trash(files, START)) == [("v", REASON_TYPE), ("t.gpx", REASON_TYPE)]


def test_a_start_type_file_over_the_per_file_limit_goes_even_if_newest():
    files = [f("FAVOURITES", "big", 2 * MB + 1, 100), f("FAVOURITES", "small", MB, 1)]
    assert names(files_to_trash(files, START)) == [("big", REASON_FILE_SIZE)]


def test_keeps_the_most_recently_changed_that_fit_the_quota():
    files = [f("FAVOURITES", f"n{i}", 2 * MB, i) for i in range(4)]  # 8 MB of 2 MB files
    trashed = names(files_to_trash(files, START))
    # n3 and n2 (4 MB) stay; n1 would pass 5 MB; n0 goes after it although it would fit
    assert trashed == [("n1", REASON_OVER_ALLOWANCE), ("n0", REASON_OVER_ALLOWANCE)]


def test_a_kept_file_is_never_older_than_a_trashed_one():
    files = [f("GLOBAL", "a", 3 * MB // 2, 30), f("PROFILE", "b", 2 * MB, 20), f("OSM_EDITS", "c", 2 * MB, 10),
             f("OSM_NOTES", "d", 10, 5)]
    decisions = list(decide(sorted(files, key=grace_end_order), START))
    kept = [d.changed_ms for d, reason in decisions if reason is None]
    gone = [d.changed_ms for d, reason in decisions if reason == REASON_OVER_ALLOWANCE]
    assert kept == [30, 20] and gone == [10, 5]
    assert min(kept) > max(gone)


def test_file_count_limit_keeps_the_newest():
    allowance = StartAllowance(START.allowed_types, quota_bytes=5 * MB, max_file_bytes=2 * MB, max_files=3)
    files = [f("FAVOURITES", f"n{i}", 1, i) for i in range(5)]
    assert names(files_to_trash(files, allowance)) == [("n1", REASON_OVER_ALLOWANCE), ("n0", REASON_OVER_ALLOWANCE)]


def test_usage_after_the_rule_is_within_start():
    files = [f(t, f"{t}{i}", (i * 7919) % (3 * MB), i) for i in range(200)
             for t in ("FAVOURITES", "GPX", "GLOBAL")]
    trashed = {(d.file_type, d.name) for d, _ in files_to_trash(files, START)}
    kept = [x for x in files if (x.file_type, x.name) not in trashed]
    assert sum(x.size for x in kept) <= START.quota_bytes and len(kept) <= START.max_files
    assert all(x.file_type in START.allowed_types and x.size <= START.max_file_bytes for x in kept)


def test_deterministic_for_equal_times_and_idempotent():
    files = [f("FAVOURITES", "b", 2 * MB, 7), f("FAVOURITES", "a", 2 * MB, 7), f("GLOBAL", "c", 2 * MB, 7)]
    assert names(files_to_trash(files, START)) == [("c", REASON_OVER_ALLOWANCE)]
    assert names(files_to_trash(list(reversed(files)), START)) == [("c", REASON_OVER_ALLOWANCE)]
    kept = [x for x in files if x.name != "c"]
    assert files_to_trash(kept, START) == []  # applied again: nothing more goes


def test_an_account_within_start_loses_nothing():
    files = [f("FAVOURITES", "fav", MB, 1), f("GLOBAL", "settings", 1000, 2)]
    assert files_to_trash(files, START) == []
