"""BlobStore.put_stream against a fake S3 client: parts, hashing, limits, and clean-up."""

import asyncio
import hashlib

import pytest

from osmcloud_common import blobstore
from osmcloud_common.blobstore import PART_SIZE, BlobStore, BodyTooLarge


class FakeMinio:
    def __init__(self, fail_part: int | None = None) -> None:
        self.objects: dict[str, bytes] = {}
        self.uploads: dict[str, dict[int, bytes]] = {}
        self.aborted: list[str] = []
        self.fail_part = fail_part
        self.in_flight = 0
        self.most_in_flight = 0

    def put_object(self, _bucket, key, data, length, content_type=None):
        self.objects[key] = data.read(length)

    def _create_multipart_upload(self, _bucket, key, headers):
        upload_id = f"up-{len(self.uploads)}"
        self.uploads[upload_id] = {}
        return upload_id

    def _upload_part(self, _bucket, key, data, headers, upload_id, number):
        if number == self.fail_part:
            raise ConnectionError("S3 went away")
        self.uploads[upload_id][number] = bytes(data)
        return f"etag-{number}"

    def _complete_multipart_upload(self, _bucket, key, upload_id, parts):
        assert [p.part_number for p in parts] == sorted(self.uploads[upload_id])
        self.objects[key] = b"".join(self.uploads[upload_id][p.part_number] for p in parts)

    def _abort_multipart_upload(self, _bucket, key, upload_id):
        self.aborted.append(upload_id)


class FakeSmallPuts:
    """Stands in for the event loop's PUT of a small body (s3_small_put.py) with the same fake."""

    def __init__(self, fake: FakeMinio) -> None:
        self.fake = fake

    async def put(self, key: str, data: bytes, content_type: str, region: str) -> None:
        self.fake.objects[key] = data

    async def close(self) -> None:
        pass


def store_with(fake: FakeMinio) -> BlobStore:
    store = BlobStore("127.0.0.1:1", "k", "s", "bucket")
    store._client = fake
    store._small = FakeSmallPuts(fake)  # type: ignore[assignment]
    store._region = "us-east-1"
    return store


def source(data: bytes, step: int, reads: list[int] | None = None):
    chunks = [data[i:i + step] for i in range(0, len(data), step)]

    async def read(n: int) -> bytes:
        if reads is not None:
            reads.append(n)
        await asyncio.sleep(0)
        return chunks.pop(0) if chunks else b""
    return read


@pytest.mark.parametrize("size", [0, 1000, PART_SIZE - 1, PART_SIZE, 2 * PART_SIZE, 2 * PART_SIZE + 12345])
async def test_bodies_arrive_whole_with_size_and_checksum(size):
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    fake = FakeMinio()
    blob = await store_with(fake).put_stream("k", source(data, 300_000))
    assert fake.objects["k"] == data
    assert blob.size == size and blob.sha256 == hashlib.sha256(data).hexdigest()
    multipart = size >= PART_SIZE
    assert bool(fake.uploads) == multipart
    if multipart:
        (parts,) = fake.uploads.values()
        assert all(len(p) == PART_SIZE for n, p in sorted(parts.items())[:-1])


async def test_never_asks_the_source_for_more_than_one_part():
    reads: list[int] = []
    await store_with(FakeMinio()).put_stream("k", source(b"y" * (3 * PART_SIZE), 1 << 20, reads))
    assert max(reads) <= PART_SIZE


async def test_the_limit_stops_the_upload_and_aborts_it():
    fake = FakeMinio()
    with pytest.raises(BodyTooLarge):
        await store_with(fake).put_stream("k", source(b"z" * (3 * PART_SIZE), 1 << 20), limit=2 * PART_SIZE + 1)
    assert "k" not in fake.objects and fake.aborted == ["up-0"]


async def test_a_failing_source_or_part_leaves_nothing():
    fake = FakeMinio()

    async def broken(n: int) -> bytes:
        broken.calls += 1
        if broken.calls > 12:
            raise ConnectionResetError("client went away")
        return b"q" * (1 << 20)
    broken.calls = 0
    with pytest.raises(ConnectionResetError):
        await store_with(fake).put_stream("k", broken)
    assert "k" not in fake.objects and fake.aborted == ["up-0"]

    fake = FakeMinio(fail_part=2)
    with pytest.raises(ConnectionError):
        await store_with(fake).put_stream("k", source(b"w" * (3 * PART_SIZE), 1 << 20))
    assert "k" not in fake.objects and fake.aborted == ["up-0"]


def test_part_size_is_valid_for_s3():
    assert blobstore.PART_SIZE >= 5 * 1024 * 1024


@pytest.mark.parametrize("secure", [False, True])
def test_a_body_goes_to_s3_unsigned_and_the_sdk_hashes_none(monkeypatch, secure):
    """put_stream hashes the body (the version's SHA-256); the SDK must not hash it again for
    the signature (plain HTTP: SHA-256) or for a Content-MD5 (HTTPS)."""
    import minio.api
    from minio.credentials.credentials import Credentials

    def no_hash_of_a_body(data):
        assert not data, "the SDK hashed a request body"
        return hashlib.sha256(b"").hexdigest() if data is not None else None
    monkeypatch.setattr(minio.api, "sha256_hash", no_hash_of_a_body)
    monkeypatch.setattr(minio.api, "md5sum_hash", no_hash_of_a_body)
    client = BlobStore("127.0.0.1:9", "k", "s", "bucket", secure=secure)._client
    body = b"p" * 1000
    headers, _ = client._build_headers("127.0.0.1:9", {}, body, Credentials("k", "s"))
    assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert headers["Content-Length"] == "1000" and "Content-MD5" not in headers
    # a Content-MD5 the caller sets itself (S3 requires one on DeleteObjects) is kept
    headers, _ = client._build_headers("127.0.0.1:9", {"Content-MD5": "given"}, body, Credentials("k", "s"))
    assert headers["Content-MD5"] == "given"
