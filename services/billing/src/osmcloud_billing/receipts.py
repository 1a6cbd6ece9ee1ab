"""Store receipts and their verification.

Real store verifiers (Google Play, App Store, Huawei) cannot be reached from here and are
not built yet. Verification goes through `ReceiptVerifier`; the sandbox verifier accepts
receipts signed with a configured key (HMAC-SHA256), which serves dev and tests."""

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from .errors import ReceiptRejected

__all__ = ["NoStoreVerifier", "ReceiptRejected", "ReceiptVerifier", "SandboxVerifier", "VerifiedPurchase",
           "sign_sandbox_receipt", "verifier_from"]


@dataclass(frozen=True)
class VerifiedPurchase:
    platform: str
    order_id: str
    product_id: str
    purchased_at: datetime
    expires_at: datetime


class ReceiptVerifier(Protocol):
    def verify(self, platform: str, receipt: str) -> VerifiedPurchase: ...

    def verify_order_token(self, token: str) -> VerifiedPurchase:
        """An order as OsmAnd's apps name it (`orderid`): a token the store can verify on its
        own, platform included. ReceiptRejected when it is not one."""
        ...


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _to_storage_precision(at: datetime) -> datetime:
    """MongoDB keeps milliseconds: compare receipts at the precision they are stored with."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def sign_sandbox_receipt(key: str, *, platform: str, order_id: str, product_id: str, purchased_at: datetime,
                         expires_at: datetime) -> str:
    """What the sandbox store hands a device after a purchase (used by tests and dev tools)."""
    body = json.dumps({"platform": platform, "order_id": order_id, "product_id": product_id,
                       "purchased_at": purchased_at.isoformat(), "expires_at": expires_at.isoformat()},
                      sort_keys=True).encode()
    return f"{_b64(body)}.{_b64(hmac.new(key.encode(), body, hashlib.sha256).digest())}"


class NoStoreVerifier:
    """What verifies receipts when no store is configured (the sandbox off, no real store
    built): every receipt and order token is refused, so nobody gets Pro by signing one."""

    MESSAGE = "this server verifies no store's purchases (no store verifier is configured)"

    def verify(self, platform: str, receipt: str) -> VerifiedPurchase:
        raise ReceiptRejected(self.MESSAGE)

    def verify_order_token(self, token: str) -> VerifiedPurchase:
        raise ReceiptRejected(self.MESSAGE)


def verifier_from(sandbox_store: bool, sandbox_receipt_key: str) -> ReceiptVerifier:
    """The sandbox store only when explicitly enabled (dev and tests); otherwise none."""
    return SandboxVerifier(sandbox_receipt_key) if sandbox_store else NoStoreVerifier()


class SandboxVerifier:
    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def verify(self, platform: str, receipt: str) -> VerifiedPurchase:
        purchase = self.verify_order_token(receipt)
        if purchase.platform != platform:
            raise ReceiptRejected(f"the receipt was issued for {purchase.platform}, not {platform}")
        return purchase

    def verify_order_token(self, token: str) -> VerifiedPurchase:
        """A sandbox receipt carries its platform, so it is also a verifiable order token."""
        receipt = token
        body_part, dot, signature_part = (receipt or "").partition(".")
        try:
            body, signature = _unb64(body_part), _unb64(signature_part)
        except (ValueError, TypeError):  # the decoder's complaint adds nothing to the sentence below
            raise ReceiptRejected("the receipt is malformed (expected <payload>.<signature>, base64url)") from None
        if not dot or not hmac.compare_digest(hmac.new(self._key, body, hashlib.sha256).digest(), signature):
            raise ReceiptRejected("the receipt's signature does not verify: it was not issued by the store")
        try:
            fields = json.loads(body)
            purchase = VerifiedPurchase(
                platform=fields["platform"], order_id=str(fields["order_id"]), product_id=fields["product_id"],
                purchased_at=_to_storage_precision(datetime.fromisoformat(fields["purchased_at"])),
                expires_at=_to_storage_precision(datetime.fromisoformat(fields["expires_at"])))
        except (ValueError, KeyError, TypeError):  # a client's bad payload: no traceback worth keeping
            raise ReceiptRejected("the receipt's payload is malformed") from None
        if purchase.expires_at.tzinfo is None or purchase.expires_at <= purchase.purchased_at:
            raise ReceiptRejected("the receipt's dates are inconsistent")
        return purchase
