"""Auth's domain errors, free of HTTP: routes.py (native) and osmand_compat.py (OsmAnd's
/userdata/) each map them to answers in one place."""

from osmcloud_common.domain_errors import DomainError


class AuthError(DomainError):
    code = "auth_refused"


class InvalidEmail(AuthError):
    code = "invalid_email"


class CodeRejected(AuthError):
    """The offered code unlocks nothing: wrong, expired, used, out of tries here, or none was
    requested (`code` says which: code_wrong, code_expired, code_used, code_exhausted, code_unknown)."""
    code = "code_wrong"


class TooManyCodes(AuthError):
    """A limit on mailed codes: `details["retry_after_seconds"]` says when to ask again."""
    code = "too_many_codes"

    def __init__(self, message: str, *, code: str, retry_after_seconds: int) -> None:
        super().__init__(message, code=code, details={"retry_after_seconds": retry_after_seconds})
        self.retry_after_seconds = retry_after_seconds


class MailFailed(AuthError):
    code = "mail_failed"


class DeviceNotFound(AuthError):
    code = "device_not_found"


class UnknownAccount(AuthError):
    """An operator named an account that does not exist (the admin API)."""
    code = "unknown_account"


class AccountGone(AuthError):
    """The caller's account was deleted meanwhile."""
    code = "account_gone"


class OrderRefused(AuthError):
    """billing's verdict on an OsmAnd orderid that cannot serve this account (`outcome`:
    other_account, unknown, expired, not_eligible, …)."""
    code = "order_refused"

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


class PurchasesUnavailable(AuthError):
    """billing did not answer: an order cannot be verified now."""
    code = "unavailable"
