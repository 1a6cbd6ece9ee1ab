"""The native API of an osmcloud server, through its gateway (docs/openapi.yaml), with httpx.

Bodies stream both ways in 1 MiB chunks (a file is never held in memory); answers that are
errors become the CLI's errors (errors.py) with the server's message."""

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from .errors import BadInput, CliError, NotFound, NotLoggedIn, Offline, Refused, VersionConflict
from .layout import Key

CHUNK = 1024 * 1024
Progress = Callable[[int], None]
JsonObject = dict[str, Any]  # an answer's body as the server sends it (docs/openapi.yaml)


def _noop(_: int) -> None:
    pass


def file_path(key: Key) -> str:
    return f"/api/files/{quote(key.type, safe='')}/{quote(key.name, safe='/')}"


def error_of(response: httpx.Response) -> CliError:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    if not isinstance(error, dict):
        error = {}
    code = error.get("code") or f"http_{response.status_code}"
    message = error.get("message") or f"the server answered {response.status_code} {response.reason_phrase}"
    details = {k: v for k, v in error.items() if k not in ("code", "message")}
    status = response.status_code
    kind: type[CliError] = CliError
    if status == 401:
        kind = NotLoggedIn
        message = f"the server refused this device's token ({message}); log in again: osmcloud login URL EMAIL"
    elif status in (403, 413):
        kind = Refused
    elif status == 409 and code == "version_conflict":
        kind = VersionConflict
    elif status == 404:
        kind = NotFound
    elif status == 400:
        kind = BadInput
    elif status >= 500:
        kind = Offline
        message = f"the server is unavailable ({status}): {message}; try again later"
    return kind(message, code=code, status=status, details=details)


class Api:
    def __init__(self, server: str, token: str | None = None, *, connections: int = 8,
                 timeout: float = 60) -> None:
        self.server = server.rstrip("/")
        headers = {"User-Agent": "osmcloud-cli/0.1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.AsyncClient(
            base_url=self.server, headers=headers,
            timeout=httpx.Timeout(timeout, connect=10),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections))

    async def close(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> "Api":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201, 202), **kwargs: Any) -> Any:
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._offline(exc) from exc
        if response.status_code not in ok:
            raise error_of(response)
        return response.json() if response.content else None

    async def call_object(self, method: str, path: str, **kwargs: Any) -> JsonObject:
        """`call` for a route whose answer is a JSON object: every route below (docs/openapi.yaml)."""
        answer: JsonObject = await self.call(method, path, **kwargs)  # response.json() is typed Any
        return answer

    def _offline(self, exc: Exception) -> Offline:
        return Offline(f"cannot reach {self.server}: {exc.__class__.__name__} {exc}".rstrip() +
                       "; check the URL and the network, then run the command again")

    # ------------------------------------------------------------ auth
    async def send_code(self, email: str) -> JsonObject:
        return await self.call_object("POST", "/api/auth/login-codes", json={"email": email})

    async def create_session(self, email: str, code: str, device: dict[str, str]) -> JsonObject:
        return await self.call_object("POST", "/api/auth/sessions",
                                      json={"email": email, "code": code, "device": device})

    async def account(self) -> JsonObject:
        return await self.call_object("GET", "/api/auth/account")

    async def devices(self) -> JsonObject:
        return await self.call_object("GET", "/api/auth/devices")

    async def logout_device(self, device_id: str) -> JsonObject:
        return await self.call_object("DELETE", f"/api/auth/devices/{quote(device_id, safe='')}")

    async def logout(self) -> JsonObject:
        return await self.call_object("POST", "/api/auth/logout")

    # ------------------------------------------------------------ files: listing and feed
    async def changes(self, cursor: str | None, limit: int = 1000) -> JsonObject:
        params = {"limit": str(limit)}
        if cursor:
            params["cursor"] = cursor
        return await self.call_object("GET", "/api/files/changes", params=params)

    async def live_files(self) -> list[JsonObject]:
        files: list[JsonObject] = (await self.call_object("GET", "/api/files"))["files"]
        return files

    async def backup_types(self) -> list[JsonObject]:
        types: list[JsonObject] = (await self.call_object("GET", "/api/files/backup-types"))["types"]
        return types

    async def set_backup(self, file_type: str, enabled: bool) -> JsonObject:
        return await self.call_object("PUT", f"/api/files/backup-types/{quote(file_type, safe='')}",
                                      json={"enabled": enabled})

    async def storage(self) -> JsonObject:
        return await self.call_object("GET", "/api/files/storage")

    # ------------------------------------------------------------ files: transfers
    async def upload(self, key: Key, path: Path, size: int, base_version: str | None, clienttime: int | None,
                     progress: Progress = _noop) -> JsonObject:
        """Streams `size` bytes of the file as a new version based on `base_version`."""
        params: dict[str, str] = {}
        if base_version:
            params["base_version"] = base_version
        if clienttime is not None:
            params["clienttime"] = str(clienttime)
        try:
            response = await self.http.put(file_path(key), params=params, content=_read_chunks(path, size, progress),
                                           headers={"Content-Type": "application/octet-stream",
                                                    "Content-Length": str(size)})
        except httpx.TransportError as exc:
            raise self._offline(exc) from exc
        except httpx.LocalProtocolError as exc:  # the file shrank or grew while it was sent
            raise CliError(f"{key.path} changed while it was uploaded ({exc}); the next sync sends it again",
                           code="changed_while_uploading") from exc
        if response.status_code != 201:
            raise error_of(response)
        version: JsonObject = response.json()
        return version

    async def download(self, key: Key, version_id: str, target: Path, progress: Progress = _noop) -> tuple[str, int]:
        """Streams one version into `target` (created); returns its ('sha256:<hex>', size),
        checked against the server's checksum."""
        return await self.download_url(file_path(key), {"version": version_id}, target, progress)

    async def download_url(self, path: str, params: dict[str, str] | None, target: Path,
                           progress: Progress = _noop) -> tuple[str, int]:
        digest, size = hashlib.sha256(), 0
        try:
            async with self.http.stream("GET", path, params=params, follow_redirects=True) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise error_of(response)
                expected = response.headers.get("X-Checksum") or None
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                with os.fdopen(fd, "wb") as out:
                    async for chunk in response.aiter_bytes(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        await asyncio.to_thread(out.write, chunk) if len(chunk) >= CHUNK else out.write(chunk)
                        progress(len(chunk))
                    out.flush()
                    os.fsync(out.fileno())
        except httpx.TransportError as exc:
            raise self._offline(exc) from exc
        checksum = f"sha256:{digest.hexdigest()}"
        if expected and expected != checksum:
            raise CliError(f"{path}: the bytes received do not match the server's checksum; try again",
                           code="checksum_mismatch")
        return checksum, size

    async def delete(self, key: Key, base_version: str | None) -> JsonObject:
        params = {"base_version": base_version} if base_version else None
        return await self.call_object("DELETE", file_path(key), params=params)

    # ------------------------------------------------------------ trash
    async def trash(self) -> JsonObject:
        return await self.call_object("GET", "/api/trash")

    async def trash_restore(self, item_id: str) -> JsonObject:
        return await self.call_object("POST", f"/api/trash/items/{quote(item_id, safe='')}/restore")

    async def trash_delete(self, item_id: str) -> JsonObject:
        return await self.call_object("DELETE", f"/api/trash/items/{quote(item_id, safe='')}")

    async def trash_empty(self) -> JsonObject:
        return await self.call_object("DELETE", "/api/trash")

    async def trash_download(self, item_id: str, target: Path, progress: Progress = _noop) -> tuple[str, int]:
        return await self.download_url(f"/api/trash/items/{quote(item_id, safe='')}/download", None, target, progress)


async def _read_chunks(path: Path, size: int, progress: Progress) -> AsyncIterator[bytes]:
    """At most `size` bytes of the file, a chunk at a time (large reads off the event loop)."""
    left = size
    with open(path, "rb") as f:
        while left > 0:
            want = min(CHUNK, left)
            chunk = await asyncio.to_thread(f.read, want) if want >= CHUNK else f.read(want)
            if not chunk:
                return
            left -= len(chunk)
            progress(len(chunk))
            yield chunk
