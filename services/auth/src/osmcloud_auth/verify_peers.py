"""Keeps every auth replica's verify cache (token_cache.py) honest: a logout answers only
after every replica that may hold the token in memory has dropped it.

* Each replica registers in auth's `verify_replicas` collection (its id and URL) and renews
  that registration every `renew_seconds`; a renewal that finds the registration gone means
  another replica fenced us: we flush and register again (token_cache's lease rules).
* After a revocation is written, the revoking replica drops the tokens from its own cache and
  POSTs the same drop to every other registered replica's /internal/verify-cache/drop, all at
  once. A replica that does not confirm within `peer_timeout` is fenced: its registration is
  deleted, and the logout waits out one lease (plus a margin for clock-rate differences), by
  when that replica can serve nothing it held. A dead replica costs one logout that wait once.

So whatever answered the logout, the next verify anywhere reads the database for that token.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from osmcloud_common import tracing
from osmcloud_common.logging import get_logger

from .token_cache import TokenCache

log = get_logger(__name__)

DROP_PATH = "/internal/verify-cache/drop"
# registrations nobody renewed for this long are removed at start-up (crashed replicas)
FORGET_AFTER = timedelta(minutes=5)


def advertised_url(http_host: str, http_port: int) -> str:
    """Where other replicas reach this one: the listen address, or this host's address when
    listening on every interface (a container)."""
    host = http_host
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostbyname(socket.gethostname())
    return f"http://{host}:{http_port}"


class VerifyPeers:
    def __init__(self, cache: TokenCache, registry: AsyncCollection[dict[str, Any]], *, url: str, gateway_secret: str,
                 renew_seconds: float, peer_timeout: float) -> None:
        self.cache, self.registry, self.url = cache, registry, url
        self.gateway_secret = gateway_secret
        self.renew_seconds, self.peer_timeout = renew_seconds, peer_timeout
        self.replica_id = uuid.uuid4().hex
        self._registered = False
        self._session: aiohttp.ClientSession | None = None
        self.fenced_total = 0

    # ------------------------------------------------------------ our own registration
    async def run(self) -> None:
        """Background job: register, then renew; never lets an error end the lease loop."""
        with contextlib.suppress(Exception):
            await self.registry.delete_many({"seen_at": {"$lt": datetime.now(UTC) - FORGET_AFTER}})
        try:
            while True:
                try:
                    await self._renew_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the lease simply runs out; verify reads the database
                    log.warning("verify cache lease not renewed", error=repr(exc))
                await asyncio.sleep(self.renew_seconds)
        finally:
            self.cache.lease_lost()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.registry.delete_one({"_id": self.replica_id}), 2)
            if self._session is not None:
                await self._session.close()

    async def _renew_once(self) -> None:
        sent_at = time.monotonic()
        if self._registered:
            result = await self.registry.update_one({"_id": self.replica_id},
                                                    {"$set": {"seen_at": datetime.now(UTC)}})
            if result.matched_count:
                self.cache.lease_renewed(sent_at)
                return
            log.warning("verify cache registration removed by another replica; flushing")
            self.cache.lease_lost()
            self._registered = False
            sent_at = time.monotonic()
        await self.registry.replace_one({"_id": self.replica_id},
                                        {"url": self.url, "seen_at": datetime.now(UTC)}, upsert=True)
        self.cache.registered(sent_at)
        self._registered = True

    # ------------------------------------------------------------ telling the others
    async def drop(self, *, device_ids: Sequence[str] = (), user_id: str | None = None) -> None:
        """After a revocation is written: returns once no replica can serve those tokens."""
        self.cache.drop(device_ids=list(device_ids), user_id=user_id)
        body = {"device_ids": list(device_ids), "user_id": user_id}
        peers = await self._others()
        if not peers:
            return
        confirmed = await asyncio.gather(*(self._tell(peer, body) for peer in peers))
        unreachable = [peer for peer, ok in zip(peers, confirmed, strict=True) if not ok]
        if not unreachable:
            return
        await self.registry.delete_many({"_id": {"$in": [peer["_id"] for peer in unreachable]}})
        self.fenced_total += len(unreachable)
        wait = self.cache.lease_seconds * 1.1 + 0.2
        log.warning("verify cache replicas unreachable; fenced, waiting out their lease",
                    replicas=[peer.get("url") for peer in unreachable], wait_seconds=wait)
        await asyncio.sleep(wait)

    async def _others(self) -> list[dict[str, Any]]:
        """The other registered replicas. The revocation is already written: a passing database
        error must not leave the others uninformed, so a few tries before giving up (the
        caller then fails, and the client's retried logout broadcasts again)."""
        for attempt in range(3):
            try:
                return await self.registry.find({"_id": {"$ne": self.replica_id}}, {"url": 1}).to_list(None)
            except PyMongoError:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.2)
        return []

    async def _tell(self, peer: dict[str, Any], body: dict[str, Any]) -> bool:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.peer_timeout),
                                                  trace_configs=tracing.client_trace_configs())
        try:
            async with self._session.post(f"{peer['url']}{DROP_PATH}", json=body,
                                          headers={"X-Gateway-Secret": self.gateway_secret}) as response:
                answer = await response.json() if response.status == 200 else {}
            # the address may now belong to another process: only the registered one counts
            return bool(answer.get("replica_id") == peer["_id"])
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return False

    # ------------------------------------------------------------ being told
    def register(self, app: web.Application) -> None:
        app.router.add_post(DROP_PATH, self.dropped)

    async def dropped(self, request: web.Request) -> web.Response:
        """Another replica revoked tokens: forget them (whatever our lease state) and confirm."""
        try:
            body = await request.json()
            device_ids = [str(d) for d in body.get("device_ids") or []]
            user_id = body.get("user_id")
        except (ValueError, AttributeError):
            return web.json_response({"error": {"code": "bad_request", "message": "JSON body expected"}},
                                     status=400)
        removed = self.cache.drop(device_ids=device_ids, user_id=str(user_id) if user_id else None)
        return web.json_response({"replica_id": self.replica_id, "removed": removed})
