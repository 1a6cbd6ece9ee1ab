"""Plans as data: what each plan entitles an account to."""

from datetime import timedelta

from osmcloud_common.datatypes import START_TYPES
from osmcloud_common.events import STORAGE_FACTOR, Entitlement

from .lifecycle import Plans
from .settings import BillingSettings


def start_entitlement(settings: BillingSettings) -> Entitlement:
    return Entitlement(plan="start", quota_bytes=settings.start_quota_bytes,
                       max_file_bytes=settings.start_max_file_bytes, max_files=settings.start_max_files,
                       allowed_types=sorted(START_TYPES),
                       storage_limit_bytes=STORAGE_FACTOR * settings.start_quota_bytes)


def pro_entitlement(settings: BillingSettings) -> Entitlement:
    return Entitlement(plan="pro", quota_bytes=settings.pro_quota_bytes, allowed_types=None,
                       storage_limit_bytes=STORAGE_FACTOR * settings.pro_quota_bytes)


def plans_from(settings: BillingSettings) -> Plans:
    return Plans(start=start_entitlement(settings), pro=pro_entitlement(settings),
                 grace=timedelta(days=settings.grace_days))
