"""The files service's refusals, free of HTTP: what the domain and application code raise.

Each error carries what its message needs and a stable `code`. The APIs translate them in
one place each: the native and admin routes in `native_errors.py` (our JSON shape; the status
follows the error's kind), OsmAnd's `/userdata/` calls in `osmand_files.osmand_error` (the
protocol's error codes)."""

from typing import Any

from osmcloud_common.datatypes import TYPE_CATEGORIES
from osmcloud_common.domain_errors import DomainError


class FilesError(DomainError):
    """A refusal a person can act on: `code` names it, `message` says what to do, `details`
    carries facts the answer shows."""

    code = "bad_request"


# ---------------------------------------------------------------- kinds (the APIs map these)
class InvalidInput(FilesError):
    """The request names something that cannot be (a type, a name, a cursor)."""


class NotAllowed(FilesError):
    """The account's plan does not allow it."""


class Missing(FilesError):
    """The file or version is not there."""


class Refused(FilesError):
    """The account's or the file's state does not allow it now (a conflict)."""


class OverLimit(FilesError):
    """Beyond a limit of the plan (quota, file count, size of one file) or of one request."""


class TryLater(FilesError):
    """Beyond what runs at once: the same request succeeds once others have finished
    (`details["retry_after_seconds"]` says when to ask again)."""


# ---------------------------------------------------------------- input
class UnknownType(InvalidInput):
    code = "unknown_type"

    def __init__(self, file_type: str) -> None:
        super().__init__(f"unknown file type '{file_type}'; known types: {', '.join(sorted(TYPE_CATEGORIES))}")


class InvalidName(InvalidInput):
    code = "invalid_name"


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"

    def __init__(self) -> None:
        super().__init__("the cursor is not one this server issued; start again without a cursor")


class UploadIncomplete(InvalidInput):
    code = "upload_incomplete"


class TooManyChosen(InvalidInput):
    """More entries than one download takes: the request's own shape (its schema's maxItems),
    so 400 like any other malformed request; RequestTooLarge is the body's bytes."""

    code = "too_many_files"

    def __init__(self, asked: int, most: int) -> None:
        super().__init__(f"a download takes at most {most} files and this one lists {asked}; split it into "
                         f"several, or download the whole backup (GET /api/files/backup)",
                         details={"max_files": most, "files": asked})


# ---------------------------------------------------------------- plan
class NoPlan(NotAllowed):
    code = "no_plan"

    def __init__(self) -> None:
        super().__init__("this account has no plan: activate the free Start plan or buy Pro to upload")


class NotInPlan(NotAllowed):
    """A type the account's upload rules do not include (`code`: type_not_in_plan, or
    grace_period while a lapsed Pro's grace year runs)."""

    code = "type_not_in_plan"


# ---------------------------------------------------------------- missing
class AccountNotFound(Missing):
    """files holds no document of this account (the admin API's lookups)."""

    code = "unknown_account"

    def __init__(self, user_id: str) -> None:
        super().__init__(f"files knows no account '{user_id}'")


class FileNotFound(Missing):
    code = "file_not_found"


class ChosenFilesMissing(Missing):
    """Files a download names that are not there (no live file, no such version of it):
    `missing` holds each as the request named it ({type, name, version_id})."""

    code = "files_not_found"
    SHOWN = 10  # names the message spells out; details list them all

    def __init__(self, missing: list[dict[str, str | None]]) -> None:
        names = [f"{m['type']}/{m['name']}" + (f" version {m['version_id']}" if m.get("version_id") else "")
                 for m in missing[:self.SHOWN]]
        more = f" and {len(missing) - self.SHOWN} more" if len(missing) > self.SHOWN else ""
        super().__init__(f"{len(missing)} of the files asked for are not there (no live file, or no such version "
                         f"of it): {', '.join(names)}{more}; nothing was sent - leave them out and ask again",
                         details={"missing": missing})


class VersionNotFound(Missing):
    code = "version_not_found"


# ---------------------------------------------------------------- state
class Busy(Refused):
    code = "account_busy"

    def __init__(self) -> None:
        super().__init__("all data of this account is being deleted right now; try again in a moment")


class VersionConflict(Refused):
    """The file's head is not the one the change was based on. `current` is the head
    document as it is now (None: no file), for the answer to show."""

    code = "version_conflict"

    def __init__(self, current: dict[str, Any] | None,
                 message: str = "the file changed since the version this upload is based on") -> None:
        super().__init__(message)
        self.current = current


class VersionInFlight(Refused):
    code = "version_in_flight"

    def __init__(self, version_id: str) -> None:
        super().__init__(f"version {version_id} is still being written; try again in a moment")


class FileChanged(Refused):
    code = "file_changed"


class BackupDisabled(Refused):
    code = "backup_disabled"

    def __init__(self, file_type: str) -> None:
        super().__init__(f"backup of {file_type} files is switched off for this account; switch it on with "
                         f"PUT /api/files/backup-types/{file_type} {{\"enabled\": true}} to upload",
                         details={"type": file_type})


class ChangeAbandoned(Refused):
    code = "change_abandoned"

    def __init__(self) -> None:
        super().__init__("the change took too long and was undone, nothing changed; try again")


class UploadAbandoned(Refused):
    code = "upload_abandoned"

    def __init__(self) -> None:
        super().__init__("the upload took too long or all data of the account was deleted meanwhile; upload again")


# ---------------------------------------------------------------- limits
class QuotaExceeded(OverLimit):
    code = "quota_exceeded"

    def __init__(self, needed: int, used: int, quota: int) -> None:
        super().__init__(f"storage quota exceeded: the file needs {needed} bytes but only {max(0, quota - used)} "
                         f"of {quota} bytes are free", details={"quota_bytes": quota, "used_bytes": used})


class FileCountExceeded(OverLimit):
    code = "file_quota_exceeded"

    def __init__(self, max_files: int, file_count: int) -> None:
        super().__init__(f"file quota exceeded: the plan allows {max_files} files and the account has "
                         f"{file_count}; delete files or upgrade the plan",
                         details={"max_files": max_files, "file_count": file_count})


class FileTooLarge(OverLimit):
    code = "file_too_large"


class RequestTooLarge(OverLimit):
    code = "request_too_large"

    def __init__(self, most: int) -> None:
        super().__init__(f"the request body is larger than {most} bytes; list fewer files in one request",
                         details={"max_bytes": most})


class TooManyDownloads(TryLater):
    """A zip (backup or chosen files) over zip_slots.ZipSlots' limits: the account's own
    (`limit` "account") or the process's (`limit` "server")."""

    code = "too_many_downloads"
    RETRY_AFTER = {"account": 30, "server": 10}  # seconds; an account's own zips end when it reads them

    def __init__(self, limit: str, most: int) -> None:
        zips = f"{most} zip download{'s' if most != 1 else ''} (backup or chosen files)"
        if limit == "account":
            message = (f"this account already has {zips} running, the most one account may have at once; "
                       f"nothing was sent - let one finish (or cancel it), then ask again")
        else:
            message = (f"the server is streaming {zips}, the most it streams at once; nothing was sent - "
                       f"ask again in {self.RETRY_AFTER[limit]} s")
        super().__init__(message, details={"limit": limit, "max_downloads": most,
                                           "retry_after_seconds": self.RETRY_AFTER[limit]})


# ---------------------------------------------------------------- bulk upload (bulk.py)
class BulkBodyMalformed(InvalidInput):
    """A bulk upload's body cannot be read on (not multipart, a broken boundary or part)."""

    code = "malformed_body"


class TooManyFiles(OverLimit):
    code = "too_many_files"

    def __init__(self, max_files: int) -> None:
        super().__init__(f"a bulk upload takes at most {max_files} files; the first {max_files} were handled "
                         f"(see results) and the request was not read further: send the rest in another request",
                         details={"max_files_per_request": max_files})
