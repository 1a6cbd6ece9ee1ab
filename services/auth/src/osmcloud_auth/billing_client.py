"""auth's one call to billing: OsmAnd's `orderid` (user-register, device-register,
user-update-orderid) goes through billing's purchase verification, service to service with
the gateway secret (`POST /internal/osmand-order`, see osmcloud_billing.osmand_orders)."""

from dataclasses import dataclass

import aiohttp

from osmcloud_common.service_client import ServiceClient


class BillingUnavailable(Exception):
    """billing did not answer: nothing is known about the order."""


@dataclass(frozen=True)
class OrderAnswer:
    outcome: str  # linked | valid | unknown | not_eligible | other_account | expired
    message: str


class BillingClient(ServiceClient):
    def __init__(self, base_url: str, gateway_secret: str, timeout_seconds: float = 10.0) -> None:
        super().__init__(base_url, gateway_secret, timeout_seconds)

    async def order(self, orderid: str, user_id: str | None, link: bool) -> OrderAnswer:
        try:
            async with self.session().post(f"{self.base_url}/internal/osmand-order", headers=self.headers(),
                                           json={"orderid": orderid, "user_id": user_id, "link": link}) as reply:
                body = await reply.json(content_type=None)
                if reply.status != 200 or not isinstance(body, dict) or "outcome" not in body:
                    raise BillingUnavailable(f"billing answered {reply.status}: {body}")
                return OrderAnswer(str(body["outcome"]), str(body.get("message") or ""))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise BillingUnavailable(repr(exc)) from exc
