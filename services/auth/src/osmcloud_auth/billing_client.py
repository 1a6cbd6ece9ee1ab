"""auth's one call to billing: OsmAnd's `orderid` (user-register, device-register,
user-update-orderid) goes through billing's purchase verification, service to service with
the gateway secret (`POST /internal/osmand-order`, see osmcloud_billing.osmand_orders)."""

from dataclasses import dataclass

import aiohttp

from osmcloud_common.logging import current_request_id


class BillingUnavailable(Exception):
    """billing did not answer: nothing is known about the order."""


@dataclass(frozen=True)
class OrderAnswer:
    outcome: str  # linked | valid | unknown | not_eligible | other_account | expired
    message: str


class BillingClient:
    def __init__(self, base_url: str, gateway_secret: str, timeout_seconds: float = 10.0) -> None:
        self.base_url, self.secret = base_url.rstrip("/"), gateway_secret
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def order(self, orderid: str, user_id: str | None, link: bool) -> OrderAnswer:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        headers = {"X-Gateway-Secret": self.secret, "X-Request-Id": current_request_id() or ""}
        try:
            async with self._session.post(f"{self.base_url}/internal/osmand-order", headers=headers,
                                          json={"orderid": orderid, "user_id": user_id, "link": link}) as reply:
                body = await reply.json(content_type=None)
                if reply.status != 200 or not isinstance(body, dict) or "outcome" not in body:
                    raise BillingUnavailable(f"billing answered {reply.status}: {body}")
                return OrderAnswer(str(body["outcome"]), str(body.get("message") or ""))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise BillingUnavailable(repr(exc)) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
