"""The change-detection rules (PRODUCT.md §5): the four cases - neither side changed, only the
local side, only the cloud, both (a conflict) - for edits, creations and deletions, and the
rules that keep a file created elsewhere from being taken for one deleted here."""

import pytest

from osmcloud_cli.rules import Action, Cloud, Conflict, Decision, Local, Synced, decide

S = Synced("v1", "sha256:aaa")
SAME = Local(changed=False)
EDITED = Local(changed=True, checksum="sha256:bbb")
HEAD_S = Cloud("v1", deleted=False, checksum="sha256:aaa")
HEAD_NEW = Cloud("v2", deleted=False, checksum="sha256:ccc")
MARKER = Cloud("m1", deleted=True)


# ---- case 1: neither side changed
def test_neither_changed_does_nothing():
    assert decide(S, SAME, HEAD_S) == Decision(Action.NOTHING)


# ---- case 2: only the local side changed
def test_local_edit_is_uploaded_based_on_the_synced_version():
    assert decide(S, EDITED, HEAD_S) == Decision(Action.UPLOAD, base_version="v1")


def test_local_deletion_deletes_in_the_cloud_based_on_the_synced_version():
    assert decide(S, None, HEAD_S) == Decision(Action.DELETE_CLOUD, base_version="v1")


def test_new_local_file_is_uploaded_without_base():
    assert decide(None, Local(changed=True), None) == Decision(Action.UPLOAD, base_version=None)


def test_new_local_file_over_a_cloud_delete_marker_names_the_marker():
    """So a re-creation on another device in the meantime is the server's 409, not an overwrite."""
    assert decide(None, Local(changed=True), MARKER) == Decision(Action.UPLOAD, base_version="m1")


# ---- case 3: only the cloud changed
def test_cloud_edit_is_downloaded():
    assert decide(S, SAME, HEAD_NEW) == Decision(Action.DOWNLOAD)


def test_cloud_deletion_removes_the_local_copy():
    assert decide(S, SAME, MARKER) == Decision(Action.DELETE_LOCAL)


def test_cloud_file_gone_for_good_removes_the_local_copy():
    """Deleted and purged from the trash before this device synced: no marker left, the
    file just is not in the cloud any more - still a deletion, never a reason to upload."""
    assert decide(S, SAME, None) == Decision(Action.DELETE_LOCAL)


def test_file_created_elsewhere_is_downloaded_not_taken_for_a_local_deletion():
    assert decide(None, None, HEAD_NEW) == Decision(Action.DOWNLOAD)


def test_file_never_seen_here_and_deleted_in_the_cloud_needs_nothing():
    assert decide(None, None, MARKER) == Decision(Action.NOTHING)
    assert decide(None, None, None) == Decision(Action.NOTHING)


# ---- case 4: both sides changed
@pytest.mark.parametrize("local, cloud, kind", [
    (EDITED, HEAD_NEW, Conflict.BOTH_EDITED),
    (None, HEAD_NEW, Conflict.DELETED_HERE),
    (EDITED, MARKER, Conflict.DELETED_IN_CLOUD),
    (EDITED, None, Conflict.DELETED_IN_CLOUD),
])
def test_both_changed_is_a_conflict_left_alone(local, cloud, kind):
    assert decide(S, local, cloud) == Decision(Action.CONFLICT, kind)


def test_created_on_both_sides_with_different_content_is_a_conflict():
    assert decide(None, Local(changed=True, checksum="sha256:x"), HEAD_NEW) == \
        Decision(Action.CONFLICT, Conflict.BOTH_CREATED)


def test_both_sides_reaching_the_same_content_agree():
    """Also how an interrupted sync resumes: the server stored the upload, the state database
    never heard of it; next time the local file equals the new cloud head."""
    same_as_head = Local(changed=True, checksum="sha256:ccc")
    assert decide(S, same_as_head, HEAD_NEW) == Decision(Action.AGREE)
    assert decide(None, Local(changed=True, checksum="sha256:ccc"), HEAD_NEW) == Decision(Action.AGREE)


def test_deleted_on_both_sides_agree():
    assert decide(S, None, MARKER) == Decision(Action.AGREE)
    assert decide(S, None, None) == Decision(Action.AGREE)


def test_restored_elsewhere_after_a_delete_here_is_a_cloud_change():
    """Deleted here and synced (state forgotten), then restored from the trash on another
    device: a new live version this folder never had - downloaded."""
    assert decide(None, None, Cloud("v3", deleted=False, checksum="sha256:aaa")) == Decision(Action.DOWNLOAD)
