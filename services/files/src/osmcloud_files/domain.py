"""The files service's rules, free of I/O: file identity, plan checks, quota arithmetic,
version removal, the storage page and the changes feed's cursor."""

import base64
from dataclasses import dataclass
from typing import Any

from osmcloud_common.datatypes import START_TYPES, TYPE_CATEGORIES, Category, category_of
from osmcloud_common.events import Entitlement

from .errors import (
    BackupDisabled,
    FileTooLarge,
    InvalidCursor,
    InvalidName,
    NoPlan,
    NotInPlan,
    UnknownType,
    VersionConflict,
)
from .model import FileHead, Version

MAX_NAME_LENGTH = 1024


@dataclass(frozen=True)
class FileRef:
    user_id: str
    file_type: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.user_id}/{self.file_type}/{self.name}"

    @property
    def category(self) -> str:
        return str(category_of(self.file_type))


def parse_file_ref(user_id: str, file_type: str, name: str) -> FileRef:
    if file_type not in TYPE_CATEGORIES:
        raise UnknownType(file_type)
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"a file name must have 1 to {MAX_NAME_LENGTH} characters")
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts) or any(ord(c) < 32 for c in name):
        raise InvalidName(f"'{name}' is not a valid file name (no empty, '.' or '..' folders, no control characters)")
    return FileRef(user_id, file_type, name)


def check_may_upload(entitlement: Entitlement | None, file_type: str) -> None:
    if entitlement is None:
        raise NoPlan()
    if entitlement.allowed_types is not None and file_type not in entitlement.allowed_types:
        if entitlement.grace_until is not None:
            raise NotInPlan(f"the Pro subscription has expired: during its grace period (until "
                            f"{entitlement.grace_until:%Y-%m-%d %H:%M} UTC) stored {file_type} files can still be "
                            f"listed, downloaded, restored and deleted, but uploads follow the Start rules, which "
                            f"do not include {file_type}; renew Pro to upload them", code="grace_period")
        plan = "Start or Pro" if file_type in START_TYPES else "Pro"
        raise NotInPlan(f"files of type {file_type} need the {plan} plan; the account's uploads follow "
                        f"the {entitlement.plan.capitalize()} rules", code="type_not_in_plan")


def restore_quota(entitlement: Entitlement | None, file_type: str) -> tuple[int, str]:
    """What a restore (from the trash, or OsmAnd's deletion of a delete marker) is checked
    against: (quota, the entitlement field that holds it). During a grace year any type may
    come back, within the lapsed plan's quota (PRODUCT.md §2: restore keeps working);
    otherwise a restore follows the upload rules."""
    if entitlement is not None and entitlement.grace_until is not None and entitlement.grace_quota_bytes is not None:
        return entitlement.grace_quota_bytes, "grace_quota_bytes"
    check_may_upload(entitlement, file_type)
    assert entitlement is not None  # check_may_upload refuses an account without a plan
    return entitlement.quota_bytes, "quota_bytes"


def blob_prefix(user_id: str) -> str:
    """Where an account's blobs live in the bucket (one place for the key format)."""
    return f"users/{user_id}/"


def blob_key(user_id: str, version_id: str) -> str:
    """The blob of one version: a new key per version, so no blob is shared by two. Every
    version's blob is here (a download of the newest version derives it from the head)."""
    return blob_prefix(user_id) + version_id


def expected_head(current: FileHead | None, base: str | None, overwrite: bool) -> str | None:
    """Which head a new version must replace (the conflict rule): the named base, or,
    without one, nothing / a deleted file, or anything when overwriting explicitly
    (OsmAnd's upload-file always overwrites)."""
    if base is not None:
        if current is None or current.version_id != base:
            raise VersionConflict(current.to_doc() if current else None)
        return base
    if current is None or current.head is None:
        return None
    if current.head.deleted or overwrite:
        return current.head.version_id
    raise VersionConflict(current.to_doc(),
                          "the file exists: name its head version as base_version, or pass overwrite=true")


def next_update_ms(now_ms: int, previous_ms: int | None) -> int:
    """Server times of one file's versions are unique and strictly increasing."""
    return now_ms if previous_ms is None or now_ms > previous_ms else previous_ms + 1


# ---------------------------------------------------------------- uploads: what to reserve
@dataclass(frozen=True)
class UploadNeed:
    """What an upload must reserve before bytes are accepted: `bytes` now (the growth of the
    account's usage if the declared body replaces the file's live head), `files` (1 when the
    upload makes a file live that was not), and `limit`, the most this body may carry."""
    bytes: int
    files: int
    limit: int
    old_size: int


def upload_need(declared_size: int | None, old_live_size: int, creates_file: bool, entitlement: Entitlement,
                hard_limit: int) -> UploadNeed:
    """A body of unknown length (chunked) reserves nothing up front; it reserves as it
    streams (see `growth_to_reserve`), never past the per-file limit."""
    limit = min(x for x in (entitlement.max_file_bytes, hard_limit) if x is not None)
    if declared_size is not None and declared_size > limit:
        raise FileTooLarge(f"the file has {declared_size} bytes; at most {limit} bytes are allowed per file",
                           details={"max_file_bytes": limit})
    needed = max(0, declared_size - old_live_size) if declared_size is not None else 0
    return UploadNeed(bytes=needed, files=1 if creates_file else 0, limit=limit, old_size=old_live_size)


def growth_to_reserve(received: int, old_size: int, reserved: int, step: int, limit: int) -> int:
    """For a streamed body: how many more bytes to reserve before accepting the bytes
    received so far (0 if the reservation covers them). Grows in steps to spare writes,
    but never reserves more than the per-file limit could need."""
    needed = received - old_size
    if needed <= reserved:
        return 0
    ceiling = max(0, limit - old_size)
    return max(needed, min(reserved + step, ceiling)) - reserved


def check_backup_enabled(file_type: str, switched_off: list[str] | None) -> None:
    if switched_off and file_type in switched_off:
        raise BackupDisabled(file_type)


# ---------------------------------------------------------------- versions: removing one
def head_after_removal(versions_newest_first: list[Version], removed_id: str) -> Version | None:
    """The version that becomes head when `removed_id` (the current head) is deleted
    permanently: the one before it, whatever it is (a delete marker included, as on the
    reference server), or None when it was the only one."""
    remaining = [v for v in versions_newest_first if v.id != removed_id]
    return remaining[0] if remaining else None


def live_version_before(versions_newest_first: list[Version], marker_id: str) -> Version | None:
    """The newest live version older than a delete marker: what the trash offers to restore."""
    seen = False
    for v in versions_newest_first:
        if v.id == marker_id:
            seen = True
        elif seen and not v.deleted:
            return v
    return None


# ---------------------------------------------------------------- storage page
def storage_breakdown(heads: list[tuple[str, int]], used_bytes: int, file_count: int,
                      entitlement: dict[str, Any] | None, switched_off: list[str]) -> dict[str, Any]:
    """Used bytes and file counts per category and per type (newest version of each live
    file), against the quota; every catalogue type is listed with its backup switch."""
    per_type: dict[str, dict[str, Any]] = {
        t: {"type": t, "category": str(c), "used_bytes": 0, "file_count": 0, "backup_enabled": t not in switched_off,
            "allowed_by_plan": entitlement is not None and (
                entitlement.get("allowed_types") is None or t in entitlement["allowed_types"])}
        for t, c in TYPE_CATEGORIES.items()}
    for file_type, size in heads:
        entry = per_type.get(file_type)
        if entry is not None:
            entry["used_bytes"] += size
            entry["file_count"] += 1
    categories: dict[str, dict[str, Any]] = {str(c): {"category": str(c), "used_bytes": 0, "file_count": 0}
                                             for c in Category}
    for entry in per_type.values():
        categories[entry["category"]]["used_bytes"] += entry["used_bytes"]
        categories[entry["category"]]["file_count"] += entry["file_count"]
    quota = entitlement["quota_bytes"] if entitlement else 0
    return {"used_bytes": used_bytes, "file_count": file_count, "quota_bytes": quota,
            "free_bytes": max(0, quota - used_bytes),
            "max_files": entitlement.get("max_files") if entitlement else None,
            "plan": entitlement["plan"] if entitlement else None,
            "categories": list(categories.values()), "types": list(per_type.values())}


# ---------------------------------------------------------------- changes feed
CURSOR_PREFIX = "c1."


def encode_cursor(seq: int) -> str:
    return CURSOR_PREFIX + base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """0 for no cursor (from the beginning); 400 for anything this server did not issue."""
    if not cursor:
        return 0
    try:
        if not cursor.startswith(CURSOR_PREFIX):
            raise ValueError
        raw = cursor[len(CURSOR_PREFIX):]
        seq = int(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode())
        if seq < 0:
            raise ValueError
        return seq
    except ValueError:
        raise InvalidCursor() from None


def feed_horizon(change_seq: int, op_floors: list[int]) -> int:
    """The highest change number a reader may pass: an operation that has drawn a number
    but not finished records a floor below it, and the feed stops at the lowest floor, so a
    cursor never moves past a change that is still being written."""
    return min([change_seq, *op_floors])
