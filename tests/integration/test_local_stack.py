"""The infrastructure itself, through the real processes: Kafka, the MongoDB-protocol server,
the S3 server, the SMTP sink and the nginx gateway."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import smtplib
import uuid
from email.message import EmailMessage

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from minio import Minio
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from osmcloud_localstack.testing import SmtpSinkClient, StackHandle

MiB = 1024 * 1024


async def _produce_and_consume(stack: StackHandle, topic: str, count: int) -> list[bytes]:
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for i in range(count):
            await producer.send(topic, key=f"user-{i % 3}".encode(), value=f"event-{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.kafka_bootstrap,
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(60):
            while len(values) < count:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    values.extend(r.value for r in records if r.value is not None)
        await consumer.commit()
    finally:
        await consumer.stop()
    return values


async def test_kafka_produce_and_consume(stack: StackHandle) -> None:
    topic = f"{stack.topic_prefix}test-{uuid.uuid4().hex[:10]}"
    values = await _produce_and_consume(stack, topic, 200)
    assert sorted(values) == sorted(f"event-{i}".encode() for i in range(200))


async def test_mongo_insert_find_and_unique_index(stack: StackHandle) -> None:
    client: AsyncMongoClient = AsyncMongoClient(stack.mongo_url, serverSelectionTimeoutMS=10_000)
    db_name = f"test_localstack_{uuid.uuid4().hex[:10]}"
    try:
        coll = client[db_name]["things"]
        await coll.create_index("email", unique=True)
        await coll.insert_one({"email": "a@example.test", "n": 1})
        await coll.insert_many([{"email": "b@example.test", "n": 2}, {"email": "c@example.test", "n": 3}])
        found = await coll.find_one({"email": "b@example.test"})
        assert found is not None and found["n"] == 2
        assert sorted([d["n"] async for d in coll.find({"n": {"$gte": 2}})]) == [2, 3]
        with pytest.raises(DuplicateKeyError):
            await coll.insert_one({"email": "a@example.test", "n": 4})
        updated = await coll.find_one_and_update({"email": "c@example.test"}, {"$inc": {"n": 10}}, return_document=True)
        assert updated["n"] == 13
    finally:
        await client.drop_database(db_name)
        await client.close()


def _s3_roundtrip(stack: StackHandle) -> None:
    client = Minio(stack.s3_endpoint, access_key=stack.s3_access_key, secret_key=stack.s3_secret_key,
                   secure=stack.s3_secure)
    bucket = f"test-localstack-{uuid.uuid4().hex[:10]}"
    client.make_bucket(bucket)
    try:
        data = os.urandom(12 * MiB)
        # 5 MiB parts: a real multipart upload (3 parts)
        client.put_object(bucket, "big/blob.bin", io.BytesIO(data), length=-1, part_size=5 * MiB)
        stat = client.stat_object(bucket, "big/blob.bin")
        assert stat.size == len(data)

        resp = client.get_object(bucket, "big/blob.bin")
        try:
            assert hashlib.sha256(resp.read()).digest() == hashlib.sha256(data).digest()
        finally:
            resp.close()
            resp.release_conn()

        offset, length = 5 * MiB - 10, 1000
        resp = client.get_object(bucket, "big/blob.bin", offset=offset, length=length)
        try:
            assert resp.read() == data[offset : offset + length]
        finally:
            resp.close()
            resp.release_conn()

        client.remove_object(bucket, "big/blob.bin")
        assert list(client.list_objects(bucket, recursive=True)) == []
    finally:
        for obj in client.list_objects(bucket, recursive=True):
            client.remove_object(bucket, obj.object_name)
        client.remove_bucket(bucket)


async def test_s3_multipart_put_and_ranged_get(stack: StackHandle) -> None:
    await asyncio.to_thread(_s3_roundtrip, stack)


def _send_mail(stack: StackHandle, to: str, subject: str, body: str) -> None:
    msg = EmailMessage()
    msg["From"] = "osmcloud@example.test"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    with smtplib.SMTP(stack.smtp_host, stack.smtp_port, timeout=10) as s:
        s.send_message(msg)


async def test_mail_arrives_in_sink(stack: StackHandle, smtp: SmtpSinkClient, unique_email: str) -> None:
    await asyncio.to_thread(_send_mail, stack, unique_email, "Your code", "Your login code is 123456.\n")
    mail = await smtp.wait_for(unique_email, timeout=10)
    assert mail["to"] == [unique_email]
    assert mail["from"] == "osmcloud@example.test"
    assert mail["subject"] == "Your code"
    assert "123456" in mail["body"]
    assert mail["received_at"]
    await smtp.clear(unique_email)
    assert await smtp.messages(unique_email) == []


async def test_gateway_healthz(stack: StackHandle, http: aiohttp.ClientSession) -> None:
    async with http.get(stack.url("/healthz")) as resp:
        assert resp.status == 200
        assert resp.headers.get("X-Request-Id")


async def test_gateway_hides_internal_and_unknown_paths(stack: StackHandle, http: aiohttp.ClientSession) -> None:
    for path in ("/internal/verify", "/nope", "/api/auth/../internal/verify"):
        async with http.get(stack.url(path)) as resp:
            assert resp.status == 404, path
            body = await resp.json()
            assert body["error"]["code"] == "not_found"


async def test_gateway_requires_a_token(stack: StackHandle, http: aiohttp.ClientSession) -> None:
    """Needs auth's /internal/verify (401 for a missing or invalid Bearer token)."""
    for headers in ({}, {"Authorization": "Bearer not-a-real-token"}, {"X-User-Id": "someone"}):
        async with http.get(stack.url("/api/files/"), headers=headers) as resp:
            assert resp.status == 401, (headers, resp.status, await resp.text())
            body = await resp.json()
            assert body["error"]["code"] == "unauthorized"


async def test_kafka_survives_a_restart(stack: StackHandle) -> None:
    """stop_kafka()/start_kafka() work, and records written before the stop are still there."""
    topic = f"{stack.topic_prefix}test-restart-{uuid.uuid4().hex[:10]}"
    before = await _produce_and_consume(stack, topic, 10)
    assert len(before) == 10
    await asyncio.to_thread(stack.stop_kafka)
    await asyncio.to_thread(stack.start_kafka)
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=stack.kafka_bootstrap, group_id=f"test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest"
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(60):
            while len(values) < 10:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    values.extend(r.value for r in records if r.value is not None)
    finally:
        await consumer.stop()
    assert sorted(values) == sorted(before)
