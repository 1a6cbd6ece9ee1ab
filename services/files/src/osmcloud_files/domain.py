"""The files service's rules, free of I/O: file identity, plan checks, quota arithmetic."""

from dataclasses import dataclass

from osmcloud_common.datatypes import START_TYPES, TYPE_CATEGORIES, category_of
from osmcloud_common.errors import ApiError, BadRequest, Forbidden, PayloadTooLarge
from osmcloud_common.events import Entitlement

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
        raise BadRequest(f"unknown file type '{file_type}'; known types: {', '.join(sorted(TYPE_CATEGORIES))}",
                         code="unknown_type")
    if not name or len(name) > MAX_NAME_LENGTH:
        raise BadRequest(f"a file name must have 1 to {MAX_NAME_LENGTH} characters", code="invalid_name")
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts) or any(ord(c) < 32 for c in name):
        raise BadRequest(f"'{name}' is not a valid file name (no empty, '.' or '..' folders, no control characters)",
                         code="invalid_name")
    return FileRef(user_id, file_type, name)


def check_may_upload(entitlement: Entitlement | None, file_type: str) -> None:
    if entitlement is None:
        raise Forbidden("this account has no plan: activate the free Start plan or buy Pro to upload",
                        code="no_plan")
    if entitlement.allowed_types is not None and file_type not in entitlement.allowed_types:
        if entitlement.grace_until is not None:
            raise Forbidden(f"the Pro subscription has expired: during its grace period (until "
                            f"{entitlement.grace_until:%Y-%m-%d %H:%M} UTC) stored {file_type} files can still be "
                            f"listed, downloaded, restored and deleted, but uploads follow the Start rules, which "
                            f"do not include {file_type}; renew Pro to upload them", code="grace_period")
        plan = "Start or Pro" if file_type in START_TYPES else "Pro"
        raise Forbidden(f"files of type {file_type} need the {plan} plan; the account's uploads follow "
                        f"the {entitlement.plan.capitalize()} rules", code="type_not_in_plan")


def reservation_for(declared_size: int | None, entitlement: Entitlement, hard_limit: int) -> int:
    """How many bytes to reserve before accepting a body: the declared size, or for a
    body of unknown length, the most this one file may take."""
    limit = min(x for x in (entitlement.max_file_bytes, hard_limit) if x is not None)
    if declared_size is not None:
        if declared_size > limit:
            raise PayloadTooLarge(f"the file has {declared_size} bytes; at most {limit} bytes are allowed per file",
                                  code="file_too_large")
        return declared_size
    return min(limit, entitlement.quota_bytes)


def quota_exceeded(needed: int, used: int, quota: int) -> ApiError:
    return PayloadTooLarge(
        f"storage quota exceeded: the file needs {needed} bytes but only {max(0, quota - used)} of "
        f"{quota} bytes are free", code="quota_exceeded", details={"quota_bytes": quota, "used_bytes": used})


def next_update_ms(now_ms: int, previous_ms: int | None) -> int:
    """Server times of one file's versions are unique and strictly increasing."""
    return now_ms if previous_ms is None or now_ms > previous_ms else previous_ms + 1
