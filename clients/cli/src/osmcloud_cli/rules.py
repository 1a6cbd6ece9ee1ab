"""What sync does with one file: the change-detection rules of PRODUCT.md §5, free of I/O.

Three facts decide, per (type, name):
  synced  the cloud version this folder last agreed on (the state database), or None;
  local   the local file, or None when it is missing, and whether its content differs
          from the synced version;
  cloud   the cloud head as the changes feed reported it: a live version, a delete
          marker, or nothing.

Local changed = the file is new, edited or missing since the synced version. Cloud changed =
the cloud head is not the synced version (another device uploaded, deleted, or restored).
Then the four cases:
  neither changed         nothing to do;
  only local changed      upload (or delete in the cloud), based on the synced version, so the
                          server's 409 refuses it if the cloud moved meanwhile;
  only the cloud changed  download (or delete the local copy);
  both changed            a conflict, left untouched for `osmcloud resolve` - unless both sides
                          reached the same result (same content, or both deleted), which is
                          recorded as agreed. That last rule also makes an interrupted sync
                          resume cleanly: a transfer the server finished but the state database
                          never heard of is found identical on the next run.
A file never synced here and live in the cloud is downloaded: a file created elsewhere is
never taken for one deleted here, because "deleted here" needs a synced version."""

from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    NOTHING = "nothing"
    UPLOAD = "upload"                # local new or edited -> new cloud version
    DELETE_CLOUD = "delete_cloud"    # local deleted -> cloud delete marker (the file goes to the trash)
    DOWNLOAD = "download"            # cloud new or edited -> local copy replaced
    DELETE_LOCAL = "delete_local"    # cloud deleted -> local copy removed
    AGREE = "agree"                  # both sides changed to the same result: record it, transfer nothing
    CONFLICT = "conflict"            # both sides changed differently: left for the user


class Conflict(StrEnum):
    BOTH_EDITED = "edited here and in the cloud"
    BOTH_CREATED = "created here and in the cloud"
    DELETED_HERE = "deleted here, edited in the cloud"
    DELETED_IN_CLOUD = "edited here, deleted in the cloud"


@dataclass(frozen=True)
class Synced:
    """The state database's row: the version both sides last agreed on."""
    version_id: str
    checksum: str | None


@dataclass(frozen=True)
class Cloud:
    """The cloud head of a file (a delete marker has deleted=True)."""
    version_id: str
    deleted: bool
    checksum: str | None = None


@dataclass(frozen=True)
class Local:
    """The local file: its checksum ('sha256:<hex>') when it had to be read, and whether it
    differs from the synced version (always True for a file never synced)."""
    changed: bool
    checksum: str | None = None


@dataclass(frozen=True)
class Decision:
    action: Action
    conflict: Conflict | None = None
    base_version: str | None = None  # what an upload or cloud delete names as its base

    @property
    def is_local_change(self) -> bool:
        return self.action in (Action.UPLOAD, Action.DELETE_CLOUD)

    @property
    def is_cloud_change(self) -> bool:
        return self.action in (Action.DOWNLOAD, Action.DELETE_LOCAL)


NOTHING = Decision(Action.NOTHING)


def decide(synced: Synced | None, local: Local | None, cloud: Cloud | None) -> Decision:
    live = cloud if cloud is not None and not cloud.deleted else None
    if synced is None:
        if local is None:
            return Decision(Action.DOWNLOAD) if live else NOTHING
        if live is None:
            # new here; a delete marker is named as base so a re-creation elsewhere meanwhile is a 409
            return Decision(Action.UPLOAD, base_version=cloud.version_id if cloud else None)
        if local.checksum is not None and local.checksum == live.checksum:
            return Decision(Action.AGREE)
        return Decision(Action.CONFLICT, Conflict.BOTH_CREATED)

    local_changed = local is None or local.changed
    cloud_changed = live is None or live.version_id != synced.version_id
    if not local_changed and not cloud_changed:
        return NOTHING
    if local_changed and not cloud_changed:
        action = Action.DELETE_CLOUD if local is None else Action.UPLOAD
        return Decision(action, base_version=synced.version_id)
    if cloud_changed and not local_changed:
        return Decision(Action.DOWNLOAD if live else Action.DELETE_LOCAL)
    # both changed
    if local is None and live is None:
        return Decision(Action.AGREE)
    if local is not None and live is not None and local.checksum is not None and local.checksum == live.checksum:
        return Decision(Action.AGREE)
    if local is None:
        return Decision(Action.CONFLICT, Conflict.DELETED_HERE)
    if live is None:
        return Decision(Action.CONFLICT, Conflict.DELETED_IN_CLOUD)
    return Decision(Action.CONFLICT, Conflict.BOTH_EDITED)
