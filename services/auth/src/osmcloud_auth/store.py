"""Auth's storage adapter: users, codes, devices and deleted-account tombstones in auth's
own database."""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from osmcloud_common.deleted_accounts import account_key
from osmcloud_common.mongo import delete_user_data
from osmcloud_common.outbox import new_document_with_events, with_events

from .domain import Purpose

# codes of one e-mail and purpose read at once: far above what the hourly caps let exist
MAX_CODES_LISTED = 200

# What verify needs of a device; never the whole document.
VERIFY_FIELDS = {"user_id": 1, "device_id": 1, "last_seen_at": 1, "revoked_at": 1, "num": 1, "user_num": 1}

Documents = AsyncCollection[dict[str, Any]]


class Revoked(Protocol):
    """Told the tokens a write just revoked: some devices', or a whole user's."""

    async def __call__(self, *, device_ids: Sequence[str] = (), user_id: str | None = None) -> None: ...


async def _nothing_cached(*, device_ids: Sequence[str] = (), user_id: str | None = None) -> None:
    return None


class AuthStore:
    def __init__(self, users: Documents, codes: Documents, devices: Documents, deleted_accounts: Documents,
                 counters: Documents, revoked: Revoked = _nothing_cached, *, known_addresses: Documents) -> None:
        self.users, self.codes, self.devices = users, codes, devices
        # addresses a code of an e-mail was used from: {_id: "<email>|<address key>", email, seen_at}
        self.known_addresses = known_addresses
        self.deleted_accounts, self.counters = deleted_accounts, counters
        # called after every write that revokes tokens, before the caller answers: the verify
        # cache of every replica drops them (verify_peers.VerifyPeers.drop)
        self.revoked = revoked

    async def next_number(self, counter: str) -> int:
        """The next integer of a counter (OsmAnd's protocol names users and devices by
        integers): one atomic $inc on one document, so no two callers get the same number."""
        doc = await self.counters.find_one_and_update({"_id": counter}, {"$inc": {"value": 1}}, upsert=True,
                                                      return_document=ReturnDocument.AFTER)
        assert doc is not None  # an upsert returning the document after the write always has one
        return int(doc["value"])

    async def user_num(self, user: dict[str, Any]) -> int:
        """The user's integer id; accounts created before numbers existed get one now (a
        conditional set, so two racing calls agree on the first number written)."""
        if user.get("num") is not None:
            return int(user["num"])
        await self.users.update_one({"_id": user["_id"], "num": None},
                                    {"$set": {"num": await self.next_number("users")}})
        numbered = await self.users.find_one({"_id": user["_id"]}, {"num": 1})
        if numbered is None:
            raise LookupError(f"account {user['_id']} was deleted while it got its number")
        return int(numbered["num"])

    async def create_indexes(self) -> None:
        await self.users.create_index([("email", ASCENDING)], unique=True)
        await self.devices.create_index([("device_id", ASCENDING)])
        await self.devices.create_index([("user_id", ASCENDING)])
        await self.codes.create_index([("email", ASCENDING)])
        # devices used to be keyed by a random id with a unique `token_digest`; that index would
        # refuse every new device (none has the field), so it goes
        if "token_digest_1" in await self.devices.index_information():
            await self.devices.drop_index("token_digest_1")

    # ------------------------------------------------------------ codes
    # One code per (purpose, e-mail, requesting address): a request from elsewhere never
    # replaces the code someone else holds. Tries are counted per code: up to `attempts`
    # from the address that asked for it, up to `attempts_elsewhere` from all others together.
    @staticmethod
    def _code_id(email: str, purpose: Purpose, address: str) -> str:
        return f"{purpose}:{email}:{address}"

    async def replace_code(self, email: str, purpose: Purpose, address: str, code_digest: str, now: datetime,
                           ttl: timedelta, resend_after: timedelta) -> datetime | None:
        """Stores a new code for this requesting address unless its last one was sent too
        recently; returns None when stored, or when the next one may be sent. Atomic: two
        racing requests send one."""
        fields = {"email": email, "purpose": str(purpose), "address": address, "code_digest": code_digest,
                  "sent_at": now, "expires_at": now + ttl, "attempts": 0, "attempts_elsewhere": 0, "used": False}
        code_id = self._code_id(email, purpose, address)
        result = await self.codes.update_one({"_id": code_id, "sent_at": {"$lte": now - resend_after}},
                                             {"$set": fields})
        if result.matched_count:
            return None
        try:
            await self.codes.insert_one({"_id": code_id, **fields})
            return None
        except DuplicateKeyError:
            current = await self.codes.find_one({"_id": code_id})
            return (current["sent_at"] + resend_after) if current else now + resend_after

    async def codes_for(self, email: str, purpose: Purpose) -> list[dict[str, Any]]:
        """Every code of this e-mail and purpose (bounded by the hourly caps on mailed codes)."""
        return await self.codes.find({"email": email, "purpose": str(purpose)}).to_list(MAX_CODES_LISTED)

    async def take_try(self, code_id: str, field: str, limit: int) -> bool:
        """Counts one try against one budget of a live code before it is judged; False when
        that budget is spent (or the code was used meanwhile)."""
        result = await self.codes.update_one({"_id": code_id, "used": False, field: {"$lt": limit}},
                                             {"$inc": {field: 1}})
        return result.modified_count == 1

    async def mark_used(self, code_id: str, code_digest: str) -> bool:
        result = await self.codes.update_one({"_id": code_id, "code_digest": code_digest, "used": False},
                                             {"$set": {"used": True}})
        return result.modified_count == 1

    async def remember_address(self, email: str, where: str, now: datetime) -> None:
        await self.known_addresses.update_one({"_id": f"{email}|{where}"},
                                              {"$set": {"email": email, "seen_at": now}}, upsert=True)

    async def is_known_address(self, email: str, where: str, since: datetime) -> bool:
        return await self.known_addresses.find_one({"_id": f"{email}|{where}", "seen_at": {"$gte": since}},
                                                   {"_id": 1}) is not None

    async def purge_known_addresses(self, seen_before: datetime) -> int:
        return (await self.known_addresses.delete_many({"seen_at": {"$lt": seen_before}})).deleted_count

    async def purge_codes(self, expired_before: datetime) -> int:
        """Codes long expired: they answer 'unknown' instead of 'expired' from then on."""
        return (await self.codes.delete_many({"expires_at": {"$lt": expired_before}})).deleted_count

    # ------------------------------------------------------------ users
    async def user_by_email(self, email: str) -> dict[str, Any] | None:
        return await self.users.find_one({"email": email}, {"_outbox": 0})

    async def user(self, user_id: str) -> dict[str, Any] | None:
        return await self.users.find_one({"_id": user_id}, {"_outbox": 0})

    async def set_orderid(self, user_id: str, orderid: str | None) -> None:
        """The order OsmAnd's app linked (user-validate-sub shows it); billing owns the order."""
        await self.users.update_one({"_id": user_id}, {"$set": {"orderid": orderid}})

    async def create_user(self, email: str, now: datetime,
                          events_for: Callable[[str], list[dict[str, Any]]]) -> tuple[dict[str, Any], bool]:
        """Creates the account unless it exists; returns (user, created). The
        `account-registered` event is written in the same document."""
        user_id = uuid.uuid4().hex
        doc = {"_id": user_id, "user_id": user_id, "email": email, "created_at": now,
               "num": await self.next_number("users")}
        try:
            await self.users.insert_one(new_document_with_events(doc, events_for(user_id)))
            return doc, True
        except DuplicateKeyError as exc:
            existing = await self.user_by_email(email)
            if existing is None:
                raise LookupError(f"the account of {email} was deleted while another sign-in created it") from exc
            return existing, False

    # ------------------------------------------------------------ devices
    # A device document is keyed by the digest of its token, so verifying a token is a read by
    # _id (the one lookup FerretDB serves without scanning); `device_id` is its public name.
    async def add_device(self, user_id: str, token_digest: str, description: dict[str, str], now: datetime,
                         user_num: int | None = None) -> dict[str, Any]:
        """`num` is the device's integer id, `user_num` its user's (both immutable, kept here so
        verifying a token stays one read)."""
        if user_num is None:
            user = await self.user(user_id)
            user_num = await self.user_num(user) if user is not None else None
        doc = {"_id": token_digest, "device_id": uuid.uuid4().hex, "user_id": user_id, **description,
               "num": await self.next_number("devices"), "user_num": user_num,
               "created_at": now, "last_seen_at": now, "revoked_at": None}
        await self.devices.insert_one(doc)
        return doc

    async def device_by_token(self, token_digest: str) -> dict[str, Any] | None:
        """Read from the database (the verify cache in front of it is dropped by every
        revocation below before the revocation answers)."""
        device = await self.devices.find_one({"_id": token_digest}, VERIFY_FIELDS)
        return device if device is not None and device.get("revoked_at") is None else None

    async def device_by_num_and_token(self, device_num: int, token_digest: str) -> dict[str, Any] | None:
        """A live device with this integer id whose token has this digest (OsmAnd's
        deviceid + accessToken): the same record and revocation as a bearer token."""
        device = await self.device_by_token(token_digest)
        return device if device is not None and device.get("num") == device_num else None

    async def live_devices_like(self, user_id: str, phone_id: str, model: str) -> list[dict[str, Any]]:
        """Live devices of the user registered from this phone (its UUID) and model."""
        cursor = self.devices.find({"user_id": user_id, "phone_id": phone_id, "model": model, "revoked_at": None},
                                   {"device_id": 1})
        return await cursor.to_list(None)

    async def touch_device(self, token_digest: str, now: datetime) -> None:
        await self.devices.update_one({"_id": token_digest}, {"$set": {"last_seen_at": now}})

    async def revoke_device(self, user_id: str, device_id: str, now: datetime, events: list[dict[str, Any]]) -> bool:
        """Logs one device of `user_id` out; False when it is not a live device of that user.
        `device-logged-out` is written in the same document. Every replica's verify cache drops
        the device even when nothing was modified: a retried logout whose first try died
        between the write and the drop finishes the drop."""
        result = await self.devices.update_one({"device_id": device_id, "user_id": user_id, "revoked_at": None},
                                               with_events({"$set": {"revoked_at": now}}, events))
        await self.revoked(device_ids=[device_id])
        return result.modified_count == 1

    async def devices_of(self, user_id: str) -> list[dict[str, Any]]:
        cursor = self.devices.find({"user_id": user_id, "revoked_at": None}, {"_id": 0, "_outbox": 0}
                                   ).sort("created_at", 1)
        return await cursor.to_list(None)

    # ------------------------------------------------------------ account deletion
    async def record_deletion(self, user_id: str, now: datetime, events: list[dict[str, Any]]) -> bool:
        """The tombstone of a deleted account, carrying `account-deleted` in its outbox: it
        outlives the user's documents, so the event survives their removal. Keyed by a digest
        of the user id (nothing that names the user stays). False if already recorded."""
        try:
            await self.deleted_accounts.insert_one(
                new_document_with_events({"_id": account_key(user_id), "deleted_at": now}, events))
            return True
        except DuplicateKeyError:
            return False

    async def erase_account(self, user_id: str, forget_email: Callable[[str], Awaitable[None]]) -> int:
        """Revokes every device at once (their documents go) and removes the user and every
        other document of theirs; `forget_email(email)` drops what is keyed by the e-mail.
        Idempotent."""
        user = await self.user(user_id)
        removed = (await self.devices.delete_many({"user_id": user_id})).deleted_count
        await self.revoked(user_id=user_id)
        if user is not None:
            await self.codes.delete_many({"email": user["email"]})
            await self.known_addresses.delete_many({"email": user["email"]})
            await forget_email(user["email"])
        removed += (await self.users.delete_one({"_id": user_id})).deleted_count
        return removed + await delete_user_data(self.users.database, user_id)
