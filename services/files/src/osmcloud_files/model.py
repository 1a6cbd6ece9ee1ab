"""Heads and versions as the application handles them: typed values with `from_doc` /
`to_doc` for the documents store.py keeps (its docstring gives the documents' fields).

Fields this module does not name (a version's `device_num` and `zip_size` from OsmAnd, a
restored head's `restored_from`, a grace-end marker's `grace_end`) travel in `extra`, so a
document read and written again keeps them."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

HEAD_FIELDS = ("version_id", "size", "checksum", "updated_ms", "client_ms", "device_id", "deleted", "seq")
VERSION_FIELDS = ("_id", "version_id", "user_id", "type", "name", "blob_key", "size", "checksum", "updated_ms", "client_ms",
                  "device_id", "deleted", "seq", "op", "created_at")


@dataclass(frozen=True)
class Head:
    """A file's newest version as its head document holds it (`size` -1: a delete marker)."""
    version_id: str
    size: int
    checksum: str | None
    updated_ms: int
    client_ms: int | None
    device_id: str | None
    deleted: bool
    seq: int | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def live_size(self) -> int:
        """What the file takes of the quota: its size, 0 for a delete marker."""
        return 0 if self.deleted else self.size

    @property
    def restored_from(self) -> str | None:
        value = self.extra.get("restored_from")
        return str(value) if value is not None else None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Head":
        return cls(version_id=doc["version_id"], size=doc["size"], checksum=doc.get("checksum"),
                   updated_ms=doc["updated_ms"], client_ms=doc.get("client_ms"), device_id=doc.get("device_id"),
                   deleted=bool(doc.get("deleted")), seq=doc.get("seq"),
                   extra={k: v for k, v in doc.items() if k not in HEAD_FIELDS})

    def to_doc(self) -> dict[str, Any]:
        return {"version_id": self.version_id, "size": self.size, "checksum": self.checksum,
                "updated_ms": self.updated_ms, "client_ms": self.client_ms, "device_id": self.device_id,
                "deleted": self.deleted, "seq": self.seq, **self.extra}


@dataclass(frozen=True)
class FileHead:
    """A head document: the file, its head (None once its last version was removed for
    good) and the usage changes of operations that moved it and may not have settled."""
    key: str
    user_id: str
    file_type: str
    name: str
    category: str
    head: Head | None
    pending: tuple[dict[str, Any], ...] = ()

    @property
    def version_id(self) -> str | None:
        return self.head.version_id if self.head is not None else None

    @property
    def live(self) -> bool:
        return self.head is not None and not self.head.deleted

    def pending_of(self, in_flight: frozenset[str], but: str | None = None) -> list[dict[str, Any]]:
        """The pending usage entries of operations still in flight (except `but`)."""
        return [e for e in self.pending if e["op"] in in_flight and e["op"] != but]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "FileHead":
        head = doc.get("head")
        return cls(key=doc["_id"], user_id=doc["user_id"], file_type=doc["type"], name=doc["name"],
                   category=doc["category"], head=Head.from_doc(head) if head else None,
                   pending=tuple(doc.get("_usage_pending") or ()))

    def to_doc(self) -> dict[str, Any]:
        """The document as the views read it (views.head_view)."""
        return {"_id": self.key, "user_id": self.user_id, "type": self.file_type, "name": self.name,
                "category": self.category, "head": self.head.to_doc() if self.head else None,
                "_usage_pending": list(self.pending)}


@dataclass(frozen=True)
class Version:
    """A version document: one version of a file, a delete marker included."""
    id: str
    user_id: str
    file_type: str
    name: str
    blob_key: str | None
    size: int
    checksum: str | None
    updated_ms: int
    client_ms: int | None
    device_id: str | None
    deleted: bool
    seq: int | None
    op: str | None
    created_at: datetime | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def head(self) -> Head:
        """This version as a file's head."""
        return Head(self.id, self.size, self.checksum, self.updated_ms, self.client_ms, self.device_id, self.deleted,
                    self.seq, {k: v for k, v in self.extra.items() if k in ("restored_from", "grace_end")})

    @classmethod
    def of(cls, user_id: str, file_type: str, name: str, head: Head, blob_key: str | None, op: str | None,
           created_at: datetime, extra: dict[str, Any] | None = None) -> "Version":
        """The version document of a new head."""
        return cls(head.version_id, user_id, file_type, name, blob_key, head.size, head.checksum, head.updated_ms,
                   head.client_ms, head.device_id, head.deleted, head.seq, op, created_at,
                   {**head.extra, **(extra or {})})

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Version":
        return cls(id=doc["_id"], user_id=doc["user_id"], file_type=doc["type"], name=doc["name"],
                   blob_key=doc.get("blob_key"), size=doc["size"], checksum=doc.get("checksum"),
                   updated_ms=doc["updated_ms"], client_ms=doc.get("client_ms"), device_id=doc.get("device_id"),
                   deleted=bool(doc.get("deleted")), seq=doc.get("seq"), op=doc.get("op"),
                   created_at=doc.get("created_at"), extra={k: v for k, v in doc.items() if k not in VERSION_FIELDS})

    def to_doc(self) -> dict[str, Any]:
        """As stored; `version_id` repeats `_id` (the document is the head's fields plus the file's)."""
        return {"_id": self.id, "version_id": self.id, "user_id": self.user_id, "type": self.file_type, "name": self.name,
                "blob_key": self.blob_key, "size": self.size, "checksum": self.checksum,
                "updated_ms": self.updated_ms, "client_ms": self.client_ms, "device_id": self.device_id,
                "deleted": self.deleted, "seq": self.seq, "op": self.op, "created_at": self.created_at, **self.extra}
