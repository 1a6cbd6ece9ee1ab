"""Trash rules, free of I/O: expiry and the month grouping of the trash page."""

from datetime import datetime, timedelta
from itertools import groupby
from typing import Any


def expires_at(deleted_at: datetime, retention_days: int) -> datetime:
    return deleted_at + timedelta(days=retention_days)


def group_by_month(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items newest first, grouped by the month they were deleted in."""
    ordered = sorted(items, key=lambda i: i["deleted_at"], reverse=True)
    return [{"month": month, "items": list(group)}
            for month, group in groupby(ordered, key=lambda i: i["deleted_at"][:7])]
