"""The state database: newer cloud heads are never overwritten by older reports, and a folder
belongs to one account."""

import pytest

from osmcloud_cli.layout import Key
from osmcloud_cli.state import CloudRow, FolderOwnedElsewhere, State

K = Key("GPX", "a.gpx")


def test_an_older_feed_entry_never_replaces_a_newer_head(tmp_path):
    state = State(tmp_path)
    state.set_cloud(K, CloudRow(seq=10, version_id="v2", deleted=False))
    state.set_cloud(K, CloudRow(seq=8, version_id=None, deleted=False))  # an older "no version left"
    assert state.cloud_one(K).version_id == "v2"
    state.set_cloud(K, CloudRow(seq=11, version_id="m", deleted=True))
    assert state.cloud_one(K) == CloudRow(seq=11, version_id="m", deleted=True)
    state.close()


def test_synced_rows_survive_reopening_and_the_file_is_private(tmp_path):
    state = State(tmp_path)
    state.set_synced(K, "v1", "sha256:x", 3, 123, 1000)
    state.close()
    again = State(tmp_path)
    assert again.synced_one(K).version_id == "v1"
    assert (tmp_path / ".osmcloud" / "state.db").stat().st_mode & 0o077 == 0
    again.close()


def test_a_folder_belongs_to_one_account(tmp_path):
    state = State(tmp_path)
    state.claim("http://s", "u1")
    state.claim("http://s", "u1")
    with pytest.raises(FolderOwnedElsewhere):
        state.claim("http://s", "u2")
    with pytest.raises(FolderOwnedElsewhere):
        state.claim("http://other", "u1")
    state.close()


def test_a_transaction_keeps_all_of_its_changes_or_none(tmp_path):
    state = State(tmp_path)
    with state.transaction():
        state.set_synced(K, "v1", "sha256:x", 3, 123, 1000)
        state.put("cursor", "7")
    with pytest.raises(RuntimeError), state.transaction():
        state.set_synced(K, "v2", "sha256:y", 4, 456, 2000)
        state.put("cursor", "9")
        raise RuntimeError("stopped midway")
    assert state.synced_one(K).version_id == "v1" and state.get("cursor") == "7"
    state.close()
