"""JSON shapes of the files API."""

from typing import Any


def version_view(file_type: str, name: str, v: dict[str, Any], version_id: str | None = None) -> dict[str, Any]:
    """A version's fields (a head's, or a version document's with `version_id` its _id).
    Numbers are made plain ints: PyMongo gives 64-bit ones as its Int64, which the JSON
    encoder (http.json_answer) writes several times slower than an int."""
    client_ms = v.get("client_ms")
    return {"type": file_type, "name": name, "version_id": v["version_id"] if version_id is None else version_id,
            "size": int(v["size"]), "checksum": v.get("checksum"), "updatetime": int(v["updated_ms"]),
            "clienttime": None if client_ms is None else int(client_ms), "device_id": v.get("device_id"),
            "deleted": v.get("deleted", False), "seq": v.get("seq")}


def head_view(doc: dict[str, Any]) -> dict[str, Any]:
    view = version_view(doc["type"], doc["name"], doc["head"])
    view["category"] = doc["category"]
    return view


def stored_version_view(doc: dict[str, Any]) -> dict[str, Any]:
    return version_view(doc["type"], doc["name"], doc, doc["_id"])


def change_view(doc: dict[str, Any]) -> dict[str, Any]:
    """A changes-feed entry of a version document: a new version or a delete marker."""
    view = stored_version_view(doc)
    view["kind"] = "deleted" if view["deleted"] else "uploaded"
    return view


def usage_view(account: dict[str, Any]) -> dict[str, Any]:
    """An upload's answer's `usage`: the account's figures after it."""
    return {"used_bytes": account["used_bytes"], "file_count": account["file_count"],
            "quota_bytes": (account.get("entitlement") or {}).get("quota_bytes")}
