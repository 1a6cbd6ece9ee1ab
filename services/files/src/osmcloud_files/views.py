"""JSON shapes of the files API."""

from typing import Any


def version_view(file_type: str, name: str, v: dict[str, Any]) -> dict[str, Any]:
    return {"type": file_type, "name": name, "version_id": v["version_id"], "size": v["size"],
            "checksum": v.get("checksum"), "updatetime": v["updated_ms"], "clienttime": v.get("client_ms"),
            "device_id": v.get("device_id"), "deleted": v.get("deleted", False), "seq": v.get("seq")}


def head_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {**version_view(doc["type"], doc["name"], doc["head"]), "category": doc["category"]}


def stored_version_view(doc: dict[str, Any]) -> dict[str, Any]:
    return version_view(doc["type"], doc["name"], {**doc, "version_id": doc["_id"]})


def usage_view(account: dict[str, Any]) -> dict[str, Any]:
    """An upload's answer's `usage`: the account's figures after it."""
    return {"used_bytes": account["used_bytes"], "file_count": account["file_count"],
            "quota_bytes": (account.get("entitlement") or {}).get("quota_bytes")}
