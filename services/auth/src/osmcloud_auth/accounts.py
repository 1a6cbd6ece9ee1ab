"""Accounts and devices, the use cases both APIs call (native routes.py, OsmAnd's
osmand_compat.py): signing in with a mailed code (the account is created on first use, its
`account-registered` event in the same document), registering a device, logging devices out."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from osmcloud_common.clock import Clock
from osmcloud_common.events import AccountRegistered, DeviceLoggedOut
from osmcloud_common.logging import get_logger
from osmcloud_common.publisher import EventPublisher

from .codes import Codes
from .domain import Purpose, digest, new_token, normalize_email
from .errors import DeviceNotFound
from .ports import AccountStorePort

log = get_logger(__name__)

VIA_OSMAND = "osmand"


@dataclass(frozen=True)
class SignIn:
    user: dict[str, Any]
    created: bool
    at: datetime


class Accounts:
    def __init__(self, store: AccountStorePort, codes: Codes, publisher: EventPublisher, clock: Clock) -> None:
        self.store, self.codes, self.publisher, self.clock = store, codes, publisher, clock

    async def sign_in(self, email: str, purpose: Purpose, code: str, address: str | None, *,
                      via: str | None = None) -> SignIn:
        """Checks the mailed code (CodeRejected) and creates the account on first use."""
        await self.codes.check(email, purpose, code, address)
        now = self.clock.now()
        registered: list[dict[str, Any]] = []

        def events(user_id: str) -> list[dict[str, Any]]:
            payload = AccountRegistered(email=email, via=via) if via else AccountRegistered(email=email)
            registered[:] = [self.publisher.event(payload, user_id)]
            return registered
        user, created = await self.store.create_user(email, now, events)
        if created:
            self.publisher.events_written()
            # billing knows the account before this answers: OsmAnd's app backs up right after
            # signing up (billing, and through it files, has the Start plan), and a native
            # sign-up's default plan (DEFAULT_PLAN) or an operator's grant right after it sees it
            await self.publisher.hand_over("billing", registered)
        return SignIn(user, created, now)

    async def register_device(self, email: str, code: str, description: dict[str, str],
                              address: str | None) -> tuple[str, dict[str, Any], dict[str, Any], bool]:
        """The native login: (token, user, device, account created)."""
        signed = await self.sign_in(normalize_email(email), Purpose.LOGIN, code.strip(), address)
        token = new_token()
        device = await self.store.add_device(signed.user["_id"], digest(token), description, signed.at)
        log.info("device registered", user_id=signed.user["_id"], device_id=device["device_id"],
                 new_account=signed.created)
        return token, signed.user, device, signed.created

    async def register_osmand_device(self, signed: SignIn, phone_id: str, brand: str,
                                     model: str) -> tuple[str, dict[str, Any]]:
        """OsmAnd's device-register after sign_in: (access token, device). A new registration of
        the same (user, phone, model) logs the earlier one out."""
        user_id = signed.user["_id"]
        for earlier in await self.store.live_devices_like(user_id, phone_id, model):
            await self._revoke(user_id, earlier["device_id"])
        access_token = new_token()
        device = await self.store.add_device(
            user_id, digest(access_token),
            {"name": f"{brand} {model}".strip(), "brand": brand, "model": model, "platform": "osmand",
             "phone_id": phone_id}, signed.at, user_num=await self.store.user_num(signed.user))
        log.info("osmand device registered", user_id=user_id, device_id=device["device_id"],
                 new_account=signed.created)
        return access_token, device

    async def log_out(self, user_id: str, device_id: str) -> None:
        if not await self._revoke(user_id, device_id):
            raise DeviceNotFound(f"this account has no logged-in device '{device_id}'")
        log.info("device logged out", user_id=user_id, device_id=device_id)

    async def log_out_all(self, user_id: str) -> list[str]:
        """Every logged-in device of the account (an operator's logout): the ids logged out."""
        logged_out = [d["device_id"] for d in await self.store.devices_of(user_id)
                      if await self._revoke(user_id, d["device_id"])]
        if logged_out:
            log.info("devices logged out", user_id=user_id, devices=len(logged_out))
        return logged_out

    async def _revoke(self, user_id: str, device_id: str) -> bool:
        event = self.publisher.event(DeviceLoggedOut(device_id=device_id), user_id)
        if not await self.store.revoke_device(user_id, device_id, self.clock.now(), [event]):
            return False
        self.publisher.events_written()
        return True
