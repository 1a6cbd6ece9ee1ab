"""The one synchronous call trash makes to another service: asking files to restore a
trashed file (README "Internal calls" says why it is not an event). It goes straight to
files, service to service, with the gateway secret and the user the gateway authenticated."""

from typing import Any

import aiohttp

from osmcloud_common.logging import current_request_id


class FilesUnavailable(Exception):
    """files did not answer (down, timeout): the outcome is unknown to trash."""


class FilesClient:
    def __init__(self, base_url: str, gateway_secret: str, timeout_seconds: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = gateway_secret
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def restore(self, item: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(status, JSON body) of files' restore of the item's file."""
        body = {"file_type": item["type"], "name": item["name"], "tombstone_version_id": item["_id"],
                "last_version_id": item["last_version_id"]}
        headers = {"X-Gateway-Secret": self.secret, "X-User-Id": item["user_id"],
                   "X-Request-Id": current_request_id() or ""}
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            async with self._session.post(f"{self.base_url}/internal/restore", json=body, headers=headers) as reply:
                try:
                    payload = await reply.json(content_type=None)
                except ValueError:
                    payload = {}
                return reply.status, payload if isinstance(payload, dict) else {}
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise FilesUnavailable(repr(exc)) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
