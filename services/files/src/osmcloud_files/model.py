"""Heads and versions as the application handles them: typed values with `from_doc` /
`to_doc` for the documents store.py keeps (its docstring gives the documents' fields).

Fields this module does not name (a version's `device_num` and `zip_size` from OsmAnd, a
restored head's `restored_from`, a grace-end marker's `grace_end`) travel in `extra`, so a
document read and written again keeps them."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .feed_blocks import feed_block

HEAD_FIELDS = ("version_id", "size", "checksum", "updated_ms", "client_ms", "device_id", "deleted", "seq")
HEAD_EXTRA = ("restored_from", "grace_end")  # fields a head may carry besides, into its version document
VERSION_FIELDS = ("_id", "user_id", "type", "name", "blob_key", "op", "created_at", "seq_block")


@dataclass(frozen=True)
class Usage:
    """An amount of the account's usage: bytes of live files, live files, stored bytes (what
    the storage bound counts: every version document at its size + RECORD_BYTES)."""
    bytes: int = 0
    files: int = 0
    stored: int = 0


NO_USAGE = Usage()


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
    """A version document: the file, the version's own fields as a head holds them (a delete
    marker included), its blob, the operation that wrote it, and fields only the version
    document has (`extra`: OsmAnd's `device_num` and `zip_size`)."""
    user_id: str
    file_type: str
    name: str
    head: Head
    blob_key: str | None
    op: str | None
    created_at: datetime | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.head.version_id

    @property
    def size(self) -> int:
        return self.head.size

    @property
    def deleted(self) -> bool:
        return self.head.deleted

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Version":
        head = Head.from_doc({**{k: v for k, v in doc.items() if k in HEAD_FIELDS or k in HEAD_EXTRA},
                              "version_id": doc["_id"]})
        return cls(user_id=doc["user_id"], file_type=doc["type"], name=doc["name"], head=head,
                   blob_key=doc.get("blob_key"), op=doc.get("op"), created_at=doc.get("created_at"),
                   extra={k: v for k, v in doc.items() if k not in VERSION_FIELDS + HEAD_FIELDS + HEAD_EXTRA})

    def to_doc(self) -> dict[str, Any]:
        """As stored: the head's fields (`version_id` repeats `_id`) plus the file's and the version's own."""
        seq = self.head.seq
        return {"_id": self.id, "user_id": self.user_id, "type": self.file_type, "name": self.name,
                "blob_key": self.blob_key, **self.head.to_doc(), "op": self.op, "created_at": self.created_at,
                **self.extra, "seq_block": feed_block(seq) if seq is not None else None}
