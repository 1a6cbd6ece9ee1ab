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
