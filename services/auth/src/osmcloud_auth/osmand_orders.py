"""OsmAnd's `orderid` on auth's /userdata/ endpoints, verified by billing (billing_client).

What the reference server (OsmAnd-tools UserdataController) does, and what we do:
  * user-update-orderid: unknown e-mail 101; an empty orderid clears it; otherwise the order
    must be valid (102 "no subscription present" / expired / not eligible) and not held by
    another account (109); then it is the account's. The call carries no credential, so here
    the order is verified first (102 / 109), the e-mail looked at only then (101), and an
    empty orderid changes nothing; the order is also linked in billing, so its plan applies
    (subscription-activated through billing's outbox).
  * user-register: for a login (`login=true`, e-mail known) the orderid is not checked; for a
    sign-up the reference answers 109 when another account holds the order (its older
    versions also 102 for an invalid one). Same here: a sign-up with an orderid is checked
    (102 / 109) before any code is mailed; nothing is linked yet (the account does not exist
    until device-register).
  * device-register: the reference ignores orderid. The app sends it on every registration
    (RegisterDeviceCommand), so here it is linked when billing accepts it and otherwise
    ignored: a device registration never fails over an order (a lapsed purchase must not
    lock anyone out; the app's user-update-orderid reports order problems).
Expired orders answer 102 like the reference's order check (it keeps 110 for uploads of an
account whose subscription lapsed)."""

from typing import Protocol

from osmcloud_common.logging import get_logger

from .billing_client import BillingUnavailable, OrderAnswer
from .errors import OrderRefused, PurchasesUnavailable
from .ports import AccountStorePort

log = get_logger(__name__)

ACCEPTED = ("linked", "valid")


class BillingPort(Protocol):
    async def order(self, orderid: str, user_id: str | None, link: bool) -> OrderAnswer:
        """billing's verdict; BillingUnavailable when it does not answer."""
        ...


def order_error(answer: OrderAnswer) -> OrderRefused | None:
    """Why billing's verdict on an order refuses it (osmand_compat answers 109 for another
    account's order, 102 for any other), None when it is accepted."""
    if answer.outcome in ACCEPTED:
        return None
    if answer.outcome == "other_account":
        return OrderRefused(answer.outcome, answer.message or "the order belongs to another account")
    return OrderRefused(answer.outcome, answer.message or "no valid subscription present")


def unavailable() -> PurchasesUnavailable:
    return PurchasesUnavailable("purchases cannot be verified right now; retry shortly")


class OrderIds:
    def __init__(self, billing: BillingPort, store: AccountStorePort) -> None:
        self.billing, self.store = billing, store

    async def check_for_sign_up(self, orderid: str) -> None:
        """A verified order or OrderRefused (102 / 109), linking nothing: user-register of a new e-mail
        (before a code is mailed), user-update-orderid (before the e-mail is looked at)."""
        try:
            answer = await self.billing.order(orderid, None, link=False)
        except BillingUnavailable as exc:
            log.warning("billing unreachable for an order check", error=str(exc))
            raise unavailable() from exc
        error = order_error(answer)
        if error is not None:
            raise error

    async def link(self, user_id: str, orderid: str) -> None:
        """user-update-orderid: linked and recorded on the account, or OrderRefused (102 / 109)."""
        try:
            answer = await self.billing.order(orderid, user_id, link=True)
        except BillingUnavailable as exc:
            log.warning("billing unreachable for an order link", error=str(exc))
            raise unavailable() from exc
        error = order_error(answer)
        if error is not None:
            raise error
        await self.store.set_orderid(user_id, orderid)

    async def link_quietly(self, user_id: str, orderid: str) -> None:
        """device-register: linked when billing accepts it, otherwise left alone."""
        try:
            await self.link(user_id, orderid)
        except (OrderRefused, PurchasesUnavailable) as exc:
            log.info("orderid sent with device-register not linked", user_id=user_id, reason=exc.message)
