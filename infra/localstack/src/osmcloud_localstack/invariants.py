"""What must hold after any fault once the system has settled (issue 21; used by the chaos
command, benchmarks/chaos.py, and its short version in tests/integration/test_chaos.py).

Two halves:
- `Book`: what the clients were told — every acknowledged upload, delete, restore and purge
  (per file, the outcomes that may hold now: one when every call on it was answered, two when
  one was cut off by the fault), every deleted account, every HTTP answer with its time.
- `Snapshot`: what the system holds, read directly from the databases, the bucket and the
  Kafka topics (`read_snapshot`), plus each claimed live file downloaded through the gateway.

Each invariant is a pure function of a Snapshot (and the Book) returning its violations as
sentences, so tests can plant a violation in a hand-made snapshot and see it reported."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Doc = dict[str, Any]  # a document as read from the database

SERVICES = ("auth", "files", "trash", "billing")


# ---------------------------------------------------------------- what clients were told
@dataclass(frozen=True)
class Outcome:
    """One state a file may be in: live (with this content; this version when known), in
    the trash (this delete marker), or purged (gone with every version and blob)."""

    kind: str  # "live" | "deleted" | "purged"
    checksum: str | None = None  # "sha256:<hex>" of the content, for live
    version_id: str | None = None  # live: the version when the answer named it; deleted: the marker

    def describe(self) -> str:
        if self.kind == "live":
            return f"live with {self.checksum}" + (f" (version {self.version_id})" if self.version_id else "")
        if self.kind == "deleted":
            return f"in the trash (marker {self.version_id})"
        return "purged"


@dataclass
class FileClaim:
    user_id: str
    file_type: str
    name: str
    outcomes: list[Outcome]
    # every version id the client learned of this file (a purge must remove their blobs)
    versions: set[str] = field(default_factory=set)

    @property
    def key(self) -> str:
        return f"{self.user_id}/{self.file_type}/{self.name}"


@dataclass
class RequestRecord:
    """One HTTP call as the client saw it (monotonic times; status 0: no HTTP answer)."""

    method: str
    path: str
    started: float
    ended: float
    status: int
    json_body: bool  # the answer was JSON
    error: str = ""  # transport error, when status is 0
    # what a /userdata/ error stands for: OsmAnd's errors are HTTP 400 with an errorCode, and
    # 6 (try later) answers our 503, a 500 ("internal error") and a 429 alike (osmand_status)
    osmand_equivalent: int = 0


def osmand_status(path: str, status: int, body: Any) -> int:
    """The native status a /userdata/ answer of errorCode 6 stands for (503, 500 or 429); 0
    for any other answer."""
    error = body.get("error") if isinstance(body, dict) else None
    if not (path.startswith("/userdata/") and status == 400 and isinstance(error, dict)
            and error.get("errorCode") == 6):
        return 0
    message = str(error.get("message"))
    return 429 if "too many requests" in message else 500 if "internal error" in message else 503


@dataclass
class Book:
    claims: dict[str, FileClaim] = field(default_factory=dict)
    users: set[str] = field(default_factory=set)
    deleted_users: set[str] = field(default_factory=set)
    requests: list[RequestRecord] = field(default_factory=list)

    def claim(self, claim: FileClaim) -> None:
        self.claims[claim.key] = claim


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- what the system holds
@dataclass
class Snapshot:
    heads: list[Doc] = field(default_factory=list)  # files.heads (without outboxes)
    versions: list[Doc] = field(default_factory=list)  # files.versions
    accounts: list[Doc] = field(default_factory=list)  # files.accounts (the ledger)
    trash_items: list[Doc] = field(default_factory=list)  # trash.items
    billing_accounts: list[Doc] = field(default_factory=list)  # billing.accounts
    blobs: dict[str, int] = field(default_factory=dict)  # bucket: key -> size
    pending_outbox: list[str] = field(default_factory=list)  # "<db>.<collection>/<_id>" still flagged
    events: list[tuple[str, bytes]] = field(default_factory=list)  # Kafka: (event id, value) per message
    remains: dict[str, list[str]] = field(default_factory=dict)  # deleted user -> where something of them is left
    downloads: dict[str, str] = field(default_factory=dict)  # claim key -> sha256 downloaded, or "error: ..."


# ---------------------------------------------------------------- the invariants
def acknowledged_outcomes(snap: Snapshot, book: Book) -> list[str]:
    """Every acknowledged upload is there with its checksum and downloadable; nothing
    acknowledged as deleted came back; what was purged is gone with its versions and blobs."""
    heads = {h["_id"]: h for h in snap.heads}
    versions_by_file: dict[str, list[Doc]] = defaultdict(list)
    for v in snap.versions:
        versions_by_file[f"{v['user_id']}/{v['type']}/{v['name']}"].append(v)
    out = []
    for key, claim in book.claims.items():
        if claim.user_id in book.deleted_users:
            continue  # the account's erasure is checked by account_erasure
        doc = heads.get(key)
        head = (doc or {}).get("head")
        failures = []
        for o in claim.outcomes:
            why = _outcome_fails(o, head, versions_by_file.get(key, []), claim, snap, key)
            if why is None:
                break
            failures.append(f"{o.describe()}: {why}")
        else:
            out.append(f"{key}: acknowledged as {' or '.join(o.describe() for o in claim.outcomes)}, but "
                       + "; ".join(failures))
    return out


def _outcome_fails(o: Outcome, head: Doc | None, versions: list[Doc], claim: FileClaim, snap: Snapshot,
                   key: str) -> str | None:
    if o.kind == "live":
        if not head or head.get("deleted"):
            return "the file is " + ("in the trash" if head else "gone")
        if head.get("checksum") != o.checksum:
            return f"its head has {head.get('checksum')}"
        if o.version_id and head.get("version_id") != o.version_id:
            return f"its head is version {head.get('version_id')}"
        got = snap.downloads.get(key)
        if got is not None and got != o.checksum:
            return f"downloading it gave {got}"
        return None
    if o.kind == "deleted":
        if not head:
            return "the file is gone"
        if not head.get("deleted"):
            return f"it came back (live version {head.get('version_id')})"
        if o.version_id and head.get("version_id") != o.version_id:
            return f"its head is marker {head.get('version_id')}"
        return None
    left = [v["_id"] for v in versions]
    blobs = [b for b in (f"users/{claim.user_id}/{v}" for v in claim.versions) if b in snap.blobs]
    if head or left or blobs:
        return (f"still there: head {bool(head)}, versions {left}, blobs {blobs}")
    return None


def usage_matches_versions(snap: Snapshot, users: Iterable[str] | None = None) -> list[str]:
    """Each account's usage is the sum of its live files' newest versions, its file count
    their number; no reservation, no operation is left (after the reconciler)."""
    live: dict[str, list[int]] = defaultdict(list)
    for h in snap.heads:
        head = h.get("head")
        if head and not head.get("deleted"):
            live[h["user_id"]].append(max(0, head.get("size") or 0))
    wanted = set(users) if users is not None else None
    out = []
    for a in snap.accounts:
        uid = a["_id"]
        if wanted is not None and uid not in wanted:
            continue
        sizes = live.get(uid, [])
        if a.get("used_bytes") != sum(sizes) or a.get("file_count") != len(sizes):
            out.append(f"account {uid}: usage {a.get('used_bytes')} bytes in {a.get('file_count')} files, "
                       f"but its live files hold {sum(sizes)} bytes in {len(sizes)}")
        left = {k: a.get(k) for k in ("reserved_bytes", "reserved_files", "op_count") if a.get(k)}
        if left or a.get("ops"):
            out.append(f"account {uid}: reservations not drained: {left} ops {sorted(a.get('ops') or {})}")
        if a.get("committed_bytes") != a.get("used_bytes") or a.get("committed_files") != a.get("file_count"):
            out.append(f"account {uid}: committed {a.get('committed_bytes')} bytes / {a.get('committed_files')} "
                       f"files differs from used {a.get('used_bytes')} / {a.get('file_count')}")
    return out


def blobs_match_versions(snap: Snapshot) -> list[str]:
    """Every version with content has its blob; every blob belongs to a version; every head
    names a version that exists."""
    out = []
    wanted: dict[str, str] = {}
    for v in snap.versions:
        if v.get("blob_key"):
            wanted[v["blob_key"]] = v["_id"]
            if v["blob_key"] not in snap.blobs:
                out.append(f"version {v['_id']} ({v['user_id']}/{v['type']}/{v['name']}) has no blob "
                           f"{v['blob_key']}")
    for key in sorted(snap.blobs):
        if key.startswith("users/") and key not in wanted:
            out.append(f"blob {key} belongs to no version (orphan)")
    ids = {v["_id"] for v in snap.versions}
    for h in snap.heads:
        head = h.get("head")
        if head and head.get("version_id") not in ids:
            out.append(f"head {h['_id']} names version {head.get('version_id')}, which does not exist")
    return out


def trash_matches_deletes(snap: Snapshot) -> list[str]:
    """Every file whose head is a delete marker has its trash item (the item's id is the
    marker's); every trash item is the marker at the head of its file."""
    items = {i["_id"]: i for i in snap.trash_items}
    heads = {h["_id"]: h for h in snap.heads}
    out = []
    for h in snap.heads:
        head = h.get("head")
        if head and head.get("deleted") and head.get("version_id") not in items:
            out.append(f"{h['_id']} was deleted (marker {head.get('version_id')}) but has no trash item")
    for item_id, item in items.items():
        head = (heads.get(f"{item['user_id']}/{item['type']}/{item['name']}") or {}).get("head")
        if not head or head.get("version_id") != item_id:
            out.append(f"trash item {item_id} ({item['user_id']}/{item['type']}/{item['name']}) is not the "
                       f"file's current delete marker (head: {head and head.get('version_id')})")
    return out


def outboxes_drained(snap: Snapshot) -> list[str]:
    """No event is left unpublished."""
    return [f"unpublished events in {where}" for where in snap.pending_outbox]


def effects_once(snap: Snapshot) -> list[str]:
    """No event's effect applied twice, counted per event id: one id is one event (a
    re-publish carries the same bytes); a file has at most one trash item; billing's copy of
    usage is files' latest, not a sum or an older figure."""
    out = []
    payloads: dict[str, set[bytes]] = defaultdict(set)
    for event_id, value in snap.events:
        payloads[event_id].add(value)
    for event_id, values in payloads.items():
        if len(values) > 1:
            out.append(f"event id {event_id} was published with {len(values)} different contents")
    per_file = Counter(f"{i['user_id']}/{i['type']}/{i['name']}" for i in snap.trash_items)
    out += [f"{key} has {n} trash items" for key, n in per_file.items() if n > 1]
    billing = {b["_id"]: b for b in snap.billing_accounts}
    for a in snap.accounts:
        b = billing.get(a["_id"])
        if b is None or not a.get("usage_seq"):
            continue
        usage = b.get("usage") or {}
        if (usage.get("sequence"), usage.get("used_bytes"), usage.get("file_count")) != \
                (a.get("usage_seq"), a.get("used_bytes"), a.get("file_count")):
            out.append(f"account {a['_id']}: billing's usage {usage.get('used_bytes')} bytes / "
                       f"{usage.get('file_count')} files (sequence {usage.get('sequence')}) differs from files' "
                       f"{a.get('used_bytes')} / {a.get('file_count')} (sequence {a.get('usage_seq')})")
    return out


def redelivered(snap: Snapshot) -> int:
    """Event ids Kafka holds more than once (allowed: delivery is at least once)."""
    return sum(1 for n in Counter(i for i, _ in snap.events).values() if n > 1)


def account_erasure(snap: Snapshot, book: Book) -> list[str]:
    """A deleted account leaves nothing in any service or the bucket."""
    return [f"deleted account {uid} still has {', '.join(where)}" for uid, where in sorted(snap.remains.items())
            if where]


# what nginx passes on to another replica when one fails (proxy_next_upstream): idempotent
# methods; a PUT's streamed body is never sent twice, so only methods without a body count
RETRIED_METHODS = frozenset({"GET", "HEAD", "DELETE"})


def idempotent_calls_retried(book: Book, window: tuple[float, float], prefix: str = "/api/files") -> list[str]:
    """With a second replica alive: no GET, HEAD or DELETE under `prefix` failed (no answer, a
    5xx) during the fault window — the gateway passed it on to the replica that lives."""
    start, end = window
    return [f"{r.method} {r.path}: {r.status or f'no answer ({r.error})'} during the fault, not retried on the "
            f"live replica" for r in book.requests
            if r.method in RETRIED_METHODS and r.path.startswith(prefix) and r.started <= end and r.ended >= start
            and (r.status == 0 or (r.osmand_equivalent or r.status) >= 500)]


def answers_outside_faults(book: Book, windows: list[tuple[float, float]]) -> list[str]:
    """No 5xx (and no call without an answer) outside a fault window; inside one, a failing
    call is a 503 with JSON — on /userdata/, OsmAnd's form of it (400, errorCode 6) — or no
    answer at all, while the gateway itself is down."""
    out = []
    for r in book.requests:
        status = r.osmand_equivalent or r.status
        if status and status < 500:
            continue
        inside = any(r.started <= end and r.ended >= start for start, end in windows)
        what = f"{r.method} {r.path}: " + (
            f"no answer ({r.error})" if r.status == 0 else f"400 errorCode 6 standing for {status}"
            if r.osmand_equivalent else f"{r.status}" + ("" if r.json_body else " without JSON"))
        if not inside:
            out.append(f"{what} outside any fault window")
        elif status and (status != 503 or not r.json_body):
            out.append(f"{what} during a fault (only 503 with JSON is allowed)")
    return out


INVARIANTS: dict[str, Callable[[Snapshot, Book], list[str]]] = {
    "acknowledged outcomes": acknowledged_outcomes,
    "usage = counted versions, reservations drained": lambda s, b: usage_matches_versions(s),
    "versions ↔ blobs": lambda s, b: blobs_match_versions(s),
    "deletes ↔ trash items": lambda s, b: trash_matches_deletes(s),
    "outboxes drained": lambda s, b: outboxes_drained(s),
    "effects once": lambda s, b: effects_once(s),
    "deleted accounts erased": account_erasure,
}


def check_all(snap: Snapshot, book: Book) -> dict[str, list[str]]:
    """Every invariant's violations (empty lists when it holds)."""
    return {name: check(snap, book) for name, check in INVARIANTS.items()}


# ---------------------------------------------------------------- reading the system
async def read_snapshot(*, mongo_url: str, db_prefix: str, s3: Any, bucket: str, kafka_bootstrap: str,
                        topic_prefix: str, book: Book, download: Callable[[FileClaim], Any] | None = None
                        ) -> Snapshot:
    """Everything the invariants look at, read directly (not through the services).
    `s3`: a minio.Minio client; `download(claim)`: an awaitable of the bytes the gateway
    serves for a file (None: downloads are not checked)."""
    from pymongo import AsyncMongoClient

    snap = Snapshot()
    mongo: AsyncMongoClient[Doc] = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        files, trash, billing = (mongo[f"{db_prefix}{s}"] for s in ("files", "trash", "billing"))
        snap.heads = await files["heads"].find({}, {"_outbox": 0}).to_list(None)
        snap.versions = await files["versions"].find({}).to_list(None)
        snap.accounts = await files["accounts"].find({}, {"_outbox": 0}).to_list(None)
        snap.trash_items = await trash["items"].find({}).to_list(None)
        snap.billing_accounts = await billing["accounts"].find({}, {"_outbox": 0}).to_list(None)
        for service in SERVICES:
            db = mongo[f"{db_prefix}{service}"]
            for name in await db.list_collection_names():
                async for doc in db[name].find({"_outbox_pending": True}, {"_id": 1}):
                    snap.pending_outbox.append(f"{service}.{name}/{doc['_id']}")
        # copies: a client may still be finishing its last step (an account deletion's calls)
        for uid in sorted(book.deleted_users):
            snap.remains[uid] = await _remains_of(mongo, db_prefix, uid)
    finally:
        await mongo.close()

    def list_blobs() -> dict[str, int]:
        return {o.object_name: o.size for o in s3.list_objects(bucket, prefix="users/", recursive=True)}
    snap.blobs = await asyncio.to_thread(list_blobs)
    for uid in sorted(book.deleted_users):
        left = [k for k in snap.blobs if k.startswith(f"users/{uid}/")]
        if left:
            snap.remains.setdefault(uid, []).append(f"{len(left)} blob(s)")
    snap.events = await read_events(kafka_bootstrap, topic_prefix)
    if download is not None:
        for key, claim in list(book.claims.items()):
            if claim.user_id in book.deleted_users or not any(o.kind == "live" for o in claim.outcomes):
                continue
            try:
                body = await download(claim)
                snap.downloads[key] = sha256_of(body) if body is not None else "error: not downloadable"
            except Exception as exc:  # noqa: BLE001 - reported as the violation it is
                snap.downloads[key] = f"error: {exc!r}"[:200]
    return snap


USER_COLLECTIONS = {"auth": ("users", "devices"), "files": ("heads", "versions", "accounts"),
                    "trash": ("items", "claims"), "billing": ("accounts", "orders")}


async def _remains_of(mongo: Any, db_prefix: str, user_id: str) -> list[str]:
    where = []
    for service, names in USER_COLLECTIONS.items():
        for name in names:
            n = await mongo[f"{db_prefix}{service}"][name].count_documents(
                {"$or": [{"_id": user_id}, {"user_id": user_id}]})
            if n:
                where.append(f"{n} document(s) in {service}.{name}")
    return where


async def read_events(bootstrap: str, topic_prefix: str, timeout: float = 120.0) -> list[tuple[str, bytes]]:
    """Every message of the domains' topics as (event id, value), from the start (each
    topic's partitions as the admin API describes them; a consumer without a group knows only
    what it was assigned)."""
    import time

    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = sorted(t for t in await admin.list_topics() if t.startswith(topic_prefix))
        described = await admin.describe_topics(names) if names else []
    finally:
        await admin.close()
    partitions = [TopicPartition(d["topic"], p["partition"]) for d in described
                  for p in sorted(d["partitions"], key=lambda p: p["partition"])]
    found: list[tuple[str, bytes]] = []
    if not partitions:
        return found
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout

        async def behind() -> bool:
            for tp, end in ends.items():
                if await consumer.position(tp) < end:
                    return True
            return False

        while await behind():
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {len(partitions)} partitions of Kafka took over {timeout:.0f} s")
            for messages in (await consumer.getmany(timeout_ms=1000, max_records=5000)).values():
                for m in messages:
                    try:
                        event_id = json.loads(m.value)["id"]
                    except (ValueError, KeyError, TypeError):
                        event_id = f"unreadable@{m.topic}:{m.partition}:{m.offset}"
                    found.append((event_id, m.value))
    finally:
        await consumer.stop()
    return found
