"""A small client of the gateway's API for integration tests and benchmarks: it speaks
HTTP to the gateway only, like an app would, and reads login codes from the SMTP sink."""

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

CODE_PATTERN = re.compile(r"\b(\d{4,18})\b")
T = TypeVar("T")


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def error_code(self) -> str | None:
        return self.body.get("error", {}).get("code") if isinstance(self.body, dict) else None


class GatewayClient:
    def __init__(self, session: aiohttp.ClientSession, gateway_url: str, token: str | None = None) -> None:
        self.session, self.base, self.token = session, gateway_url.rstrip("/"), token

    def with_token(self, token: str | None) -> "GatewayClient":
        return GatewayClient(self.session, self.base, token)

    async def call(self, method: str, path: str, *, json: Any = None, data: Any = None,
                   headers: dict[str, str] | None = None, params: dict[str, str] | None = None) -> Reply:
        all_headers = dict(headers or {})
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        async with self.session.request(method, self.base + path, json=json, data=data, headers=all_headers,
                                        params=params) as response:
            raw = await response.read()
            if response.content_type == "application/json":
                body: Any = await response.json()
            else:
                body = raw
            return Reply(response.status, body, dict(response.headers))


async def read_code(session: aiohttp.ClientSession, sink_url: str, email: str, timeout: float = 15,
                    after: int = 0) -> str:
    """The newest code mailed to `email` (skipping the first `after` messages)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with session.get(f"{sink_url.rstrip('/')}/messages", params={"to": email}) as response:
            messages = await response.json()
        if len(messages) > after:
            match = CODE_PATTERN.search(messages[-1]["body"])
            if match:
                return match.group(1)
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no code mailed to {email} within {timeout} s")


async def count_mails(session: aiohttp.ClientSession, sink_url: str, email: str) -> int:
    async with session.get(f"{sink_url.rstrip('/')}/messages", params={"to": email}) as response:
        return len(await response.json())


async def login(client: GatewayClient, sink_url: str, email: str | None = None,
                device: dict[str, str] | None = None) -> tuple[GatewayClient, dict[str, Any]]:
    """Signs up or logs in by mailed code; returns a client carrying the device token."""
    email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
    before = await count_mails(client.session, sink_url, email)
    reply = await client.with_token(None).call("POST", "/api/auth/login-codes", json={"email": email})
    assert reply.status == 202, reply
    code = await read_code(client.session, sink_url, email, after=before)
    reply = await client.with_token(None).call("POST", "/api/auth/sessions", json={
        "email": email, "code": code,
        "device": device or {"name": "test phone", "brand": "Acme", "model": "A1", "platform": "android"}})
    assert reply.status == 201, reply
    return client.with_token(reply.body["token"]), {**reply.body, "email": email}


async def eventually(probe: Callable[[], Awaitable[T]], *, timeout: float = 30, interval: float = 0.1,
                     what: str = "condition") -> T:
    """Polls `probe` (async, returns a truthy value when done) until it holds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} did not happen within {timeout} s (last: {last!r})")


async def osmand_sign_up(client: GatewayClient, sink_url: str, email: str | None = None,
                         phone_id: str | None = None) -> tuple[GatewayClient, dict[str, Any]]:
    """Signs up as OsmAnd's app does (user-register, the mailed 4-digit code, device-register).
    Returns a client carrying the device's accessToken as its bearer token (the same device
    record serves both APIs) and device-register's answer ({id, userid, deviceid, accesstoken,
    ...}; `id` is the integer deviceid of /userdata/ calls)."""
    email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
    anon, phone_id = client.with_token(None), phone_id or str(uuid.uuid4())
    before = await count_mails(client.session, sink_url, email)
    reply = await anon.call("POST", "/userdata/user-register",
                            data={"email": email, "login": "false", "lang": "en", "deviceid": phone_id})
    assert reply.status == 200, reply
    code = await read_code(client.session, sink_url, email, after=before)
    reply = await anon.call("POST", "/userdata/device-register", data={
        "email": email, "token": code, "deviceid": phone_id, "brand": "Google", "model": "Pixel", "lang": "en"})
    assert reply.status == 200, reply
    return client.with_token(reply.body["accesstoken"]), {**reply.body, "email": email}


def bulk_body(files: Iterable[tuple[str | None, bytes, dict[str, str]]]) -> tuple[bytes, str]:
    """A bulk upload's body (POST /api/files/bulk, docs/bulk-upload.md) and its Content-Type:
    one multipart/form-data part per (TYPE/name, content, part headers); ASCII names as a
    quoted filename, others as RFC 5987's filename* (percent-encoded UTF-8); None names no file."""
    boundary = uuid.uuid4().hex
    out = bytearray()
    for target, data, headers in files:
        named = "" if target is None else f'; filename="{target}"' if target.isascii() else \
            f"; filename*=utf-8''{quote(target, safe='')}"
        lines = [f"--{boundary}", f'Content-Disposition: form-data; name="file"{named}',
                 *(f"{k}: {v}" for k, v in headers.items())]
        out += ("\r\n".join(lines) + "\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"
