"""Billing's composition root for its application layer: given the ports (storage, event
publisher, clock, receipt verifier), it wires the use cases (the user's and the operator's),
the event handlers and the deadline job. app.py passes the real adapters; service-layer tests
pass in-memory ones."""

from dataclasses import dataclass

from osmcloud_common.clock import Clock
from osmcloud_common.publisher import EventPublisher

from .deadlines import DeadlineJob
from .handlers import Handlers
from .operator_service import OperatorPlans
from .osmand_orders import OsmandOrders
from .plans import plans_from
from .ports import BillingStorePort
from .receipts import ReceiptVerifier
from .settings import BillingSettings
from .subscriptions import Subscriptions


@dataclass(frozen=True)
class Billing:
    store: BillingStorePort
    subscriptions: Subscriptions
    orders: OsmandOrders
    handlers: Handlers
    deadlines: DeadlineJob
    operators: OperatorPlans


def bootstrap(settings: BillingSettings, *, store: BillingStorePort, publisher: EventPublisher, clock: Clock,
              verifier: ReceiptVerifier) -> Billing:
    plans, products = plans_from(settings), settings.pro_product_ids
    subscriptions = Subscriptions(store, publisher, clock, plans, verifier, products)
    operators = OperatorPlans(store, publisher, clock, plans, settings.default_plan)
    return Billing(store=store, subscriptions=subscriptions,
                   orders=OsmandOrders(subscriptions, store, verifier, clock, products),
                   handlers=Handlers(store, subscriptions, operators.apply_default_plan),
                   deadlines=DeadlineJob(store, publisher, clock, plans, settings.deadline_scan_seconds),
                   operators=operators)
