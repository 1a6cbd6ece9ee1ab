"""trash's synchronous calls to files: restoring a trashed file, and reading a file's history
for OsmAnd's empty-trash (docs/architecture.md "Internal calls" says why they are not events).
They go straight to files, service to service, with the gateway secret and the user the
gateway authenticated."""

from typing import Any
from urllib.parse import quote

import aiohttp

from osmcloud_common.service_client import ServiceClient

from .errors import FilesUnavailable, RestoreRefused

__all__ = ["FilesClient", "FilesUnavailable"]


class FilesClient(ServiceClient):
    """The files port (ports.FilesPort) over HTTP."""

    async def restore(self, item: dict[str, Any]) -> dict[str, Any]:
        """files' answer to the restore of the item's file; RestoreRefused with files' reason
        and status when it refuses."""
        wanted = {"file_type": item["type"], "name": item["name"], "tombstone_version_id": item["_id"],
                  "last_version_id": item["last_version_id"]}
        try:
            async with self.session().post(f"{self.base_url}/internal/restore", json=wanted,
                                           headers=self.headers(item["user_id"])) as reply:
                try:
                    payload = await reply.json(content_type=None)
                except ValueError:
                    payload = {}
                body: dict[str, Any] = payload if isinstance(payload, dict) else {}
                status = reply.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise FilesUnavailable(repr(exc)) from exc
        if status >= 300:
            error = body.get("error") or {}
            raise RestoreRefused(error.get("message") or f"files refused the restore ({status})",
                                 code=error.get("code") or "restore_refused", files_status=status,
                                 details={k: v for k, v in error.items() if k not in ("code", "message")})
        return body

    async def history(self, user_id: str, file_type: str, name: str) -> list[dict[str, Any]]:
        """The file's versions (files' own history route, called as that user); [] when the
        file has none. FilesUnavailable when files cannot say."""
        url = f"{self.base_url}/api/files/history/{quote(file_type, safe='')}/{quote(name, safe='/')}"
        try:
            async with self.session().get(url, headers=self.headers(user_id)) as reply:
                if reply.status == 404:
                    return []
                if reply.status != 200:
                    raise FilesUnavailable(f"files answered {reply.status} for the history of {file_type}/{name}")
                body = await reply.json(content_type=None)
                return list(body.get("versions") or [])
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise FilesUnavailable(repr(exc)) from exc
