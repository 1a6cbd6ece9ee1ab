"""The event envelope and the whole catalogue, declared once for every service.

Topic per producing domain (``<prefix><domain>``), key = user id, so one user's events
stay in order. Delivery is at least once: consumers must be idempotent."""

import json
import uuid
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

SCHEMA_VERSION = 1


class Payload(BaseModel):
    """Base of every event's data; `event_type` and `domain` name it in the catalogue."""

    event_type: ClassVar[str]
    domain: ClassVar[str]


class Event(BaseModel):
    """The common envelope."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    type: str
    occurred_at: datetime
    producer: str
    user_id: str
    schema_version: int = SCHEMA_VERSION
    data: dict[str, Any]

    def payload(self) -> Payload:
        return CATALOGUE[self.type].model_validate(self.data)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, raw: bytes | str) -> "Event":
        return cls.model_validate(json.loads(raw))


def make_event(payload: Payload, *, user_id: str, producer: str, occurred_at: datetime) -> Event:
    return Event(
        type=payload.event_type,
        occurred_at=occurred_at,
        producer=producer,
        user_id=user_id,
        data=payload.model_dump(mode="json"),
    )


def topic_for(domain: str, prefix: str) -> str:
    return f"{prefix}{domain}"


# ---------------------------------------------------------------- auth
class AccountRegistered(Payload):
    event_type: ClassVar[str] = "account-registered"
    domain: ClassVar[str] = "auth"
    email: str
    # "osmand" when the account signed up through OsmAnd's /userdata/ API: the app never asks
    # for a plan, so billing activates Start for it (what the reference gives such accounts)
    via: str | None = None


class DeviceLoggedOut(Payload):
    event_type: ClassVar[str] = "device-logged-out"
    domain: ClassVar[str] = "auth"
    device_id: str


class AccountDeleted(Payload):
    event_type: ClassVar[str] = "account-deleted"
    domain: ClassVar[str] = "auth"


# ---------------------------------------------------------------- files
class FileUploaded(Payload):
    event_type: ClassVar[str] = "file-uploaded"
    domain: ClassVar[str] = "files"
    file_type: str
    name: str
    version_id: str
    size: int
    checksum: str
    device_id: str | None = None
    updated_at: datetime


class FileDeleted(Payload):
    event_type: ClassVar[str] = "file-deleted"
    domain: ClassVar[str] = "files"
    file_type: str
    name: str
    category: str
    tombstone_version_id: str
    last_version_id: str
    size: int
    deleted_at: datetime
    # the delete marker's server time in ms (its `updatetime`): OsmAnd's empty-trash names
    # trash entries by it; None in events written before the field existed
    tombstone_update_ms: int | None = None


class FileRestored(Payload):
    event_type: ClassVar[str] = "file-restored"
    domain: ClassVar[str] = "files"
    file_type: str
    name: str
    version_id: str
    tombstone_version_id: str | None = None  # the delete marker the file came back from (its trash item)


class FileVersionsPruned(Payload):
    event_type: ClassVar[str] = "file-versions-pruned"
    domain: ClassVar[str] = "files"
    file_type: str | None = None  # None: every type
    version_ids: list[str]
    freed_bytes: int
    everything: bool = False  # "delete all my data": no file of the account is left


class StorageUsageChanged(Payload):
    event_type: ClassVar[str] = "storage-usage-changed"
    domain: ClassVar[str] = "files"
    sequence: int  # grows with every change of this account's usage: keep the highest
    used_bytes: int
    file_count: int
    quota_bytes: int | None = None


# ---------------------------------------------------------------- trash
class TrashItemPurged(Payload):
    event_type: ClassVar[str] = "trash-item-purged"
    domain: ClassVar[str] = "trash"
    file_type: str
    name: str
    tombstone_version_id: str
    reason: Literal["expired", "deleted", "emptied"]


class TrashEmptied(Payload):
    event_type: ClassVar[str] = "trash-emptied"
    domain: ClassVar[str] = "trash"
    item_count: int


# ---------------------------------------------------------------- billing
# every version an account keeps (live, old, trashed) together: at most this many times the
# plan's quota (docs/adr/0005-storage-bound.md)
STORAGE_FACTOR = 2


class Entitlement(BaseModel):
    """What an account may store; files keeps a projection of it."""

    plan: Literal["start", "pro"]
    quota_bytes: int
    max_file_bytes: int | None = None
    max_files: int | None = None
    allowed_types: list[str] | None = None  # None: every type
    # set while a Pro subscription is in its grace year: uploads follow these (Start) rules,
    # but what is stored stays readable, restorable and deletable
    grace_until: datetime | None = None
    # during grace: the lapsed plan's quota, which restores are checked against (what Pro
    # stored may come back from the trash; new uploads follow quota_bytes)
    grace_quota_bytes: int | None = None
    # the most bytes the account's stored versions (live, old and trashed) may take, see
    # docs/adr/0005-storage-bound.md; None: STORAGE_FACTOR x quota_bytes
    storage_limit_bytes: int | None = None

    @property
    def storage_limit(self) -> int:
        return self.storage_limit_bytes if self.storage_limit_bytes is not None else STORAGE_FACTOR * self.quota_bytes


class SubscriptionActivated(Payload):
    event_type: ClassVar[str] = "subscription-activated"
    domain: ClassVar[str] = "billing"
    entitlement: Entitlement
    expires_at: datetime | None = None


class SubscriptionRenewed(Payload):
    event_type: ClassVar[str] = "subscription-renewed"
    domain: ClassVar[str] = "billing"
    entitlement: Entitlement
    expires_at: datetime | None = None


class SubscriptionExpired(Payload):
    event_type: ClassVar[str] = "subscription-expired"
    domain: ClassVar[str] = "billing"
    entitlement: Entitlement  # what uploads follow during grace (Start rules)
    grace_until: datetime


class GracePeriodEnded(Payload):
    event_type: ClassVar[str] = "grace-period-ended"
    domain: ClassVar[str] = "billing"
    entitlement: Entitlement  # Start rules from now on


class EntitlementChanged(Payload):
    """The account's allowance changed without a change of plan: an operator set or cleared a
    per-account quota or file-count override (services/billing operator_plans.py)."""
    event_type: ClassVar[str] = "entitlement-changed"
    domain: ClassVar[str] = "billing"
    entitlement: Entitlement


CATALOGUE: dict[str, type[Payload]] = {
    p.event_type: p
    for p in (
        AccountRegistered, DeviceLoggedOut, AccountDeleted,
        FileUploaded, FileDeleted, FileRestored, FileVersionsPruned, StorageUsageChanged,
        TrashItemPurged, TrashEmptied,
        SubscriptionActivated, SubscriptionRenewed, SubscriptionExpired, GracePeriodEnded, EntitlementChanged,
    )
}

DOMAINS: tuple[str, ...] = ("auth", "files", "trash", "billing")
