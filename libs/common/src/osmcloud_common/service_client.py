"""The base of every service-to-service HTTP client: the other service's address, one
session opened on first use, and the headers an internal call carries (the gateway secret
the services check, the request id for the logs, and the user the call acts for); with
traces on, each call is a CLIENT span whose context goes along as `traceparent`."""

import aiohttp

from . import tracing
from .logging import current_request_id


class ServiceClient:
    def __init__(self, base_url: str, gateway_secret: str, timeout_seconds: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = gateway_secret
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout, trace_configs=tracing.client_trace_configs())
        return self._session

    def headers(self, user_id: str | None = None) -> dict[str, str]:
        headers = {"X-Gateway-Secret": self.secret, "X-Request-Id": current_request_id() or ""}
        if user_id is not None:
            headers["X-User-Id"] = user_id
        return headers

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
