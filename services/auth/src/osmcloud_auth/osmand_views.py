"""How OsmAnd's /userdata/ protocol shows users and devices (pure functions, no I/O)."""

from datetime import datetime
from typing import Any

from osmcloud_common.osmand import ErrorCode, OsmandError

from .domain import normalize_email


def java_medium_date(moment: datetime) -> str:
    """Java's default medium date-time in English, as the reference serializes dates:
    `Aug 22, 2026, 9:26:24 AM` (12-hour clock, no leading zero on the hour)."""
    hour = moment.hour % 12 or 12
    return (f"{moment:%b} {moment.day}, {moment.year}, {hour}:{moment:%M}:{moment:%S} "
            f"{'AM' if moment.hour < 12 else 'PM'}")


def compat_email(raw: str | None) -> str:
    """The normalized e-mail, or 101 (the protocol's 'e-mail invalid'; an address the domain
    refuses raises InvalidEmail, which osmand_compat.osmand_error answers 101 too)."""
    if not raw or "@" not in raw:
        raise OsmandError(ErrorCode.EMAIL_INVALID, "send a valid e-mail address (it must contain '@')")
    return normalize_email(raw)


def device_json(device: dict[str, Any]) -> dict[str, str]:
    """The app reads these five as strings; `udpatetime` is the reference's spelling."""
    return {"id": str(device["num"]), "userid": str(device["user_num"]), "deviceid": device.get("phone_id", ""),
            "accesstoken": device["token"], "udpatetime": java_medium_date(device["created_at"])}


def user_json(user: dict[str, Any], user_num: int) -> dict[str, Any]:
    """The reference's user object; the app reads `orderid` (the order it linked, or None)."""
    return {"id": user_num, "email": user["email"], "regTime": java_medium_date(user["created_at"]),
            "orderid": user.get("orderid")}
