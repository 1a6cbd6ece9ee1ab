"""Trash's domain errors, free of HTTP: routes.py and osmand_compat.py map them to answers."""

from typing import Any

from osmcloud_common.domain_errors import DomainError


class TrashError(DomainError):
    code = "trash_refused"


class ItemNotFound(TrashError):
    """Not in this user's trash: restored, purged, being purged, or never there."""
    code = "item_not_found"


class RestoreInProgress(TrashError):
    code = "restore_in_progress"


class RestoreUnavailable(TrashError):
    """files did not answer a restore: the item stays in the trash."""
    code = "unavailable"


class RestoreRefused(TrashError):
    """files refused the restore (quota, plan, …): its reason, passed on as files gave it, with
    the status files answered (the native API answers the same one; 502 for a failure of files)."""
    code = "restore_refused"

    def __init__(self, message: str, *, code: str | None, details: dict[str, Any], files_status: int) -> None:
        super().__init__(message, code=code, details=details)
        self.files_status = files_status


class MalformedEntries(TrashError):
    """OsmAnd's empty-trash body is not what the app sends: nothing is deleted."""
    code = "malformed_request"


class FilesUnavailable(Exception):
    """files did not answer (down, timeout): the outcome is unknown to trash."""
