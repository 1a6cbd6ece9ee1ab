"""Billing's domain errors: what the subscription rules and purchase checks refuse. Free of
HTTP; routes.py maps them to answers in one place."""

from osmcloud_common.domain_errors import DomainError


class BillingError(DomainError):
    code = "billing_refused"


class StartNotAvailable(BillingError):
    """The Start plan was asked for while Pro is active or in its grace period."""
    code = "start_not_available"


class ReceiptExpired(BillingError):
    code = "receipt_expired"


class ReceiptRejected(BillingError):
    """A receipt or order token the store does not vouch for."""
    code = "receipt_invalid"


class UnknownProduct(BillingError):
    code = "unknown_product"


class ReceiptMismatch(BillingError):
    code = "receipt_mismatch"


class UnknownOrder(BillingError):
    code = "unknown_order"


class OrderLinkedElsewhere(BillingError):
    """One order belongs to one account."""
    code = "order_linked_elsewhere"

    def __init__(self, message: str = "this order is already linked to another account") -> None:
        super().__init__(message)


class SubscriptionBusy(BillingError):
    """The account's subscription kept changing under a decision (racing writers)."""
    code = "busy"


class OperatorPlanRefused(BillingError):
    """An operator's plan request that cannot be applied (operator_plans.py); the message says
    what to change (`code`: bad_plan, bad_override, …)."""
    code = "operator_plan_refused"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message, code=code)


class EndInPast(OperatorPlanRefused):
    """An operator's Pro grant whose end date has passed."""
    code = "end_in_past"


class UnknownAccount(OperatorPlanRefused):
    """An operator named an account billing does not know."""
    code = "unknown_account"
