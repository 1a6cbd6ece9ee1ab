"""Auth's composition root for its application layer: given the ports (account and code
storage, the hourly limits, the mailer, the event publisher, the clock, billing for OsmAnd's
orderid), it wires the use cases both APIs call. app.py passes the real adapters (and keeps
the verify cache, which is infrastructure of the gateway's sub-request); service-layer tests
pass in-memory ones."""

from dataclasses import dataclass
from typing import Protocol

from osmcloud_common.clock import Clock
from osmcloud_common.publisher import EventPublisher

from .account_deletion import AccountDeletion
from .accounts import Accounts
from .codes import Codes
from .osmand_orders import BillingPort, OrderIds
from .ports import AccountStorePort, CodeStorePort, LimitsPort, MailerPort
from .settings import AuthSettings


class AuthStorePort(AccountStorePort, CodeStorePort, Protocol):
    """One store holds accounts, devices and codes (store.AuthStore)."""


@dataclass(frozen=True)
class Auth:
    codes: Codes
    accounts: Accounts
    deletion: AccountDeletion
    orders: OrderIds


def bootstrap(settings: AuthSettings, *, store: AuthStorePort, limits: LimitsPort, mailer: MailerPort,
              publisher: EventPublisher, clock: Clock, billing: BillingPort) -> Auth:
    codes = Codes(clock, store, limits, mailer, settings)
    return Auth(codes=codes, accounts=Accounts(store, codes, publisher, clock),
                deletion=AccountDeletion(store, codes, limits, publisher, clock),
                orders=OrderIds(billing, store))
