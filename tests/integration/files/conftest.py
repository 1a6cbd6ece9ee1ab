"""Support for the files service's black-box tests (everything through the gateway; the
database, S3 and Kafka are only read, to check that nothing is left behind, or written to
act as billing or to simulate a crash).

Fixtures:
  gateway   a GatewayClient without token
  files     FilesWorld: sign up users on Start or on a given entitlement, read events, blobs,
            the account ledger and the files process's resident memory
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from minio import Minio
from pymongo import AsyncMongoClient

from osmcloud_common.clock import advance_shared_clock
from osmcloud_common.events import Entitlement, SubscriptionActivated, make_event
from osmcloud_localstack.client import GatewayClient, eventually, login
from osmcloud_localstack.ports import PortLayout
from osmcloud_localstack.testing import clock_confirmer

MIB = 1024 * 1024
START = Entitlement(plan="start", quota_bytes=5 * MIB, max_file_bytes=2 * MIB, max_files=10_000,
                    allowed_types=["FAVOURITES", "GLOBAL", "OSM_EDITS", "OSM_NOTES", "PROFILE"])


class FilesWorld:
    def __init__(self, stack, gateway: GatewayClient) -> None:
        self.stack, self.gateway = stack, gateway
        self.mongo = AsyncMongoClient(stack.mongo_url, tz_aware=True)
        self.db = self.mongo[f"{stack.db_prefix}files"]
        self.s3 = Minio(stack.s3_endpoint, access_key=stack.s3_access_key, secret_key=stack.s3_secret_key,
                        secure=stack.s3_secure)

    async def close(self) -> None:
        await self.mongo.close()

    # ---- users --------------------------------------------------------------------------------
    async def start_user(self, device: str = "phone") -> tuple[GatewayClient, dict]:
        """A new user on the Start plan (activated through billing), known to files.
        Returns the client and the session ({user_id, device_id, email, ...})."""
        me, session = await login(self.gateway, self.stack.smtp_sink_url, device=self._device(device))
        reply = await me.call("POST", "/api/billing/start")
        assert reply.status == 201, reply
        await self.wait_plan(me, "start", 5 * MIB)
        return me, session

    async def user_with(self, entitlement: Entitlement, device: str = "phone") -> tuple[GatewayClient, dict]:
        """A new user whose entitlement arrives as billing's event would (tests only: billing
        sells no custom plans yet)."""
        me, session = await login(self.gateway, self.stack.smtp_sink_url, device=self._device(device))
        await self.grant(session["user_id"], entitlement)
        await self.wait_plan(me, entitlement.plan, entitlement.quota_bytes)
        return me, session

    async def second_device(self, session: dict, device: str = "tablet") -> GatewayClient:
        """Another device of the same account. Auth lets an address ask for a new code only
        every 30 s, so the shared test clock moves forward that much first."""
        await advance_shared_clock(self.mongo, timedelta(seconds=31), confirm=clock_confirmer(self.stack))
        other, _ = await login(self.gateway, self.stack.smtp_sink_url, email=session["email"],
                               device=self._device(device))
        return other

    @staticmethod
    def _device(name: str) -> dict[str, str]:
        return {"name": name, "brand": "Acme", "model": name.upper(), "platform": "android"}

    async def grant(self, user_id: str, entitlement: Entitlement) -> None:
        event = make_event(SubscriptionActivated(entitlement=entitlement), user_id=user_id, producer="tests",
                           occurred_at=datetime.now(UTC))
        producer = AIOKafkaProducer(bootstrap_servers=self.stack.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(f"{self.stack.topic_prefix}billing", value=event.to_json().encode(),
                                         key=user_id.encode(), headers=[("event_id", event.id.encode())])
        finally:
            await producer.stop()

    @staticmethod
    async def wait_plan(me: GatewayClient, plan: str, quota: int) -> dict:
        async def known():
            usage = (await me.call("GET", "/api/files/usage")).body
            return usage if usage.get("plan") == plan and usage.get("quota_bytes") == quota else None
        return await eventually(known, what=f"files learning the {plan} plan")

    # ---- what is stored ----------------------------------------------------------------------
    async def blob_keys(self, user_id: str) -> list[str]:
        def list_keys() -> list[str]:
            return sorted(o.object_name for o in self.s3.list_objects(self.stack.s3_bucket, prefix=f"users/{user_id}/",
                                                                      recursive=True))
        return await asyncio.to_thread(list_keys)

    async def account(self, user_id: str) -> dict:
        return await self.db["accounts"].find_one({"_id": user_id}, {"_outbox": 0})

    async def versions(self, user_id: str) -> list[dict]:
        return await self.db["versions"].find({"user_id": user_id}).to_list(None)

    async def quiet(self, user_id: str) -> None:
        """Waits until files has nothing left to write for this user (events relayed,
        operations finished): a test that writes to files' documents directly must not race files
        (FerretDB's updates are read-modify-write)."""
        async def settled():
            account = await self.db["accounts"].find_one({"_id": user_id})
            heads = await self.db["heads"].count_documents({"user_id": user_id, "_outbox_pending": True})
            return (account is not None and not account.get("_outbox_pending")
                    and not account.get("op_count") and heads == 0)
        await eventually(settled, what=f"files finishing its writes for {user_id}")

    async def assert_nothing_held(self, user_id: str, used_bytes: int, file_count: int) -> None:
        """Usage is what the live files take, and no reservation or operation is left."""
        account = await self.account(user_id)
        assert (account["used_bytes"], account["file_count"]) == (used_bytes, file_count), account
        assert account["reserved_bytes"] == 0 and account.get("reserved_files", 0) == 0, account
        assert account["committed_bytes"] == used_bytes, account
        assert account.get("ops") in ({}, None) and account.get("op_count", 0) == 0, account

    # ---- events ------------------------------------------------------------------------------
    async def events(self, domain: str, user_id: str, until, timeout: float = 30) -> list[dict]:
        """This user's events on a domain's topic, read from the start until `until(events)`."""
        consumer = AIOKafkaConsumer(f"{self.stack.topic_prefix}{domain}", bootstrap_servers=self.stack.kafka_bootstrap,
                                    auto_offset_reset="earliest", group_id=f"test-{uuid.uuid4().hex}")
        await consumer.start()
        try:
            found: list[dict] = []

            async def probe():
                batches = await consumer.getmany(timeout_ms=200)
                for messages in batches.values():
                    found.extend(e for e in (json.loads(m.value) for m in messages) if e["user_id"] == user_id)
                return found if until(found) else None
            await eventually(probe, timeout=timeout, what=f"events of {user_id} on {domain}")
            return found
        finally:
            await consumer.stop()

    # ---- the files process -------------------------------------------------------------------
    def files_pid(self) -> int:
        """The process listening on the files port (base port + 2), found through /proc."""
        gateway = urlparse(self.stack.gateway_url)
        if gateway.hostname not in ("127.0.0.1", "localhost"):
            pytest.skip("the files process runs on another machine")
        port = PortLayout(gateway.port).port("files")
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                    inodes.add(fields[9])
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                for fd in (proc / "fd").iterdir():
                    target = fd.readlink().as_posix()
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        return int(proc.name)
            except OSError:
                continue
        raise AssertionError(f"no process listens on the files port {port}")


@pytest.fixture
async def gateway(stack):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        yield GatewayClient(session, stack.gateway_url)


@pytest.fixture
async def files(stack, gateway):
    world = FilesWorld(stack, gateway)
    try:
        yield world
    finally:
        await world.close()
