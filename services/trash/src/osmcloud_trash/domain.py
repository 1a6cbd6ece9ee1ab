"""Trash rules, free of I/O: expiry, the month grouping of the trash page, and the shape of
purge claims and the events a purge batch carries."""

from datetime import datetime, timedelta
from itertools import groupby
from typing import Any, Literal, TypeVar

from osmcloud_common.events import TrashEmptied, TrashItemPurged

PurgeReason = Literal["expired", "deleted", "emptied"]


def expires_at(deleted_at: datetime, retention_days: int) -> datetime:
    return deleted_at + timedelta(days=retention_days)


def is_due(item: dict[str, Any], now: datetime) -> bool:
    expires: datetime = item["expires_at"]
    return expires <= now


def purge_lag_seconds(item: dict[str, Any], purged_at: datetime) -> float:
    """How late an expired item was purged (0 when on time or early)."""
    expires: datetime = item["expires_at"]
    return max(0.0, (purged_at - expires).total_seconds())


def group_by_month(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items newest first, grouped by the month they were deleted in."""
    ordered = sorted(items, key=lambda i: i["deleted_at"], reverse=True)
    return [{"month": month, "items": list(group)}
            for month, group in groupby(ordered, key=lambda i: i["deleted_at"][:7])]


def purge_claim(item: dict[str, Any], *, batch_id: str, reason: PurgeReason, claimed_by: str,
                claimed_at: datetime) -> dict[str, Any]:
    """The claim that reserves one item for one purge. Its `_id` is the item's, so only one
    claim per item can exist; it holds everything needed to emit the purge event again if
    the claimer dies before writing its batch."""
    return {"_id": item["_id"], "user_id": item["user_id"], "action": "purge", "batch_id": batch_id,
            "claimed_by": claimed_by, "claimed_at": claimed_at, "reason": reason,
            "file_type": item["type"], "name": item["name"], "expires_at": item["expires_at"]}


def restore_claim(item: dict[str, Any], *, claimed_by: str, claimed_at: datetime) -> dict[str, Any]:
    return {"_id": item["_id"], "user_id": item["user_id"], "action": "restore", "batch_id": None,
            "claimed_by": claimed_by, "claimed_at": claimed_at}


def batch_payloads(claims: list[dict[str, Any]]) -> list[TrashItemPurged]:
    """The events of a purge batch, derived from its claims only (so whoever completes the
    batch — its claimer or a replica taking over a stale claim — writes the same events)."""
    return [TrashItemPurged(file_type=c["file_type"], name=c["name"], tombstone_version_id=c["_id"],
                            reason=c["reason"]) for c in sorted(claims, key=lambda c: c["_id"])]


def emptied_payload(item_count: int) -> TrashEmptied:
    return TrashEmptied(item_count=item_count)


T = TypeVar("T")


def chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
