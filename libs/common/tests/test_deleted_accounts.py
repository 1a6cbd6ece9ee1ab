"""account-deleted on fakes: the erase is remembered, applying it twice changes nothing,
and a late event about the deleted user is dropped instead of re-creating data."""

import copy
from datetime import UTC, datetime
from types import SimpleNamespace

from osmcloud_common.deleted_accounts import COLLECTION, account_key
from osmcloud_common.events import AccountDeleted, StorageUsageChanged, make_event
from osmcloud_common.kafka import EventConsumer
from osmcloud_common.mongo import delete_user_data
from osmcloud_common.runtime import Runtime
from osmcloud_common.settings import ServiceSettings

AT = datetime(2026, 3, 1, tzinfo=UTC)


def _matches(doc, query):
    return all(doc.get(k) in v["$in"] if isinstance(v, dict) else doc.get(k) == v for k, v in query.items())


class FakeCursor:
    def __init__(self, docs):
        self.docs = docs

    def limit(self, n):
        return FakeCursor(self.docs[:n])

    def __aiter__(self):
        async def each():
            for doc in self.docs:
                yield doc
        return each()


class FakeCollection:
    def __init__(self):
        self.docs: dict = {}

    async def find_one(self, query, projection=None):
        return next((d for d in self.docs.values() if _matches(d, query)), None)

    def find(self, query, projection=None):
        return FakeCursor([d for d in self.docs.values() if _matches(d, query)])

    async def delete_many(self, query):
        gone = [k for k, d in self.docs.items() if _matches(d, query)]
        for k in gone:
            del self.docs[k]
        return SimpleNamespace(deleted_count=len(gone))

    async def delete_one(self, query):
        doc = await self.find_one(query)
        if doc is not None:
            del self.docs[doc["_id"]]
        return SimpleNamespace(deleted_count=int(doc is not None))

    async def update_one(self, query, update, upsert=False):
        doc = await self.find_one(query)
        if doc is None and upsert:
            doc = self.docs[query["_id"]] = {"_id": query["_id"], **update.get("$setOnInsert", {})}
        elif doc is not None:
            doc.update(update.get("$set", {}))
        return SimpleNamespace(modified_count=int(doc is not None))

    async def insert_one(self, doc):
        self.docs[doc["_id"]] = dict(doc)


class FakeDatabase(dict):
    def __missing__(self, name):
        self[name] = FakeCollection()
        return self[name]

    async def list_collection_names(self):
        return list(self)

    def snapshot(self):
        return {name: copy.deepcopy(c.docs) for name, c in self.items()}


def _event(payload, user_id="gone"):
    return make_event(payload, user_id=user_id, producer="test", occurred_at=AT)


def _service_with_data():
    db = FakeDatabase()
    for user in ("gone", "stays"):
        db["accounts"].docs[user] = {"_id": user, "user_id": user, "plan": "start"}
        db["items"].docs[f"{user}-1"] = {"_id": f"{user}-1", "user_id": user, "name": "a.gpx"}
    runtime = Runtime(ServiceSettings(service_name="test"))
    runtime.db = db
    runtime.on_account_deleted(lambda user_id: delete_user_data(db, user_id))
    return runtime, db


async def test_account_deleted_erases_the_user_and_leaves_only_an_anonymous_tombstone():
    runtime, db = _service_with_data()
    await runtime._handlers["account-deleted"](_event(AccountDeleted()))
    assert [d["user_id"] for d in db["accounts"].docs.values()] == ["stays"]
    assert [d["user_id"] for d in db["items"].docs.values()] == ["stays"]
    assert list(db[COLLECTION].docs) == [account_key("gone")]
    assert "gone" not in repr(db[COLLECTION].docs)


async def test_applying_the_same_account_deleted_twice_changes_nothing():
    runtime, db = _service_with_data()
    event = _event(AccountDeleted())
    await runtime._handlers["account-deleted"](event)
    after_first = db.snapshot()
    await runtime._handlers["account-deleted"](event)
    await runtime._handlers["account-deleted"](_event(AccountDeleted()))  # a second event, new id
    assert db.snapshot() == after_first


async def test_late_events_of_a_deleted_account_are_dropped_before_any_handler():
    runtime, db = _service_with_data()
    await runtime._handlers["account-deleted"](_event(AccountDeleted()))
    applied = []

    async def usage_changed(event):
        applied.append(event.user_id)
    consumer = EventConsumer(bootstrap="unused", topic_prefix="t.", group_id="g", database=db,
                             handlers={"storage-usage-changed": usage_changed}, skip=runtime._of_deleted_account)
    for user in ("gone", "stays"):
        late = _event(StorageUsageChanged(sequence=9, used_bytes=1, file_count=1), user_id=user)
        await consumer._handle_message(SimpleNamespace(value=late.to_json().encode(), headers=[], offset=0))
    assert applied == ["stays"]
    assert not await runtime._of_deleted_account(_event(AccountDeleted()))  # never skips the deletion itself


async def test_an_audit_entry_about_an_account_written_after_its_erase_goes_at_once():
    """An operator's lookup of a deleted id, or a call whose record lands after account-deleted
    came back from Kafka: only the minimal deletion record may stay."""
    runtime, db = _service_with_data()
    await runtime.audit.record("account-viewed", actor="operator:x", user_id="gone")  # before: erased with the rest
    await runtime._handlers["account-deleted"](_event(AccountDeleted()))
    await runtime.audit.record("account-deleted-by-operator", actor="operator:x", user_id="gone",
                               detail={"path": "/admin/api/auth/accounts/gone"})
    await runtime.audit.record("account-viewed", actor="operator:x", user_id="stays")
    entries = sorted((d["action"], d.get("user_id") or d.get("account")) for d in db["audit_log"].docs.values())
    assert entries == [("account-deleted", account_key("gone")), ("account-viewed", "stays")]
    assert "gone" not in repr(db["audit_log"].docs)
