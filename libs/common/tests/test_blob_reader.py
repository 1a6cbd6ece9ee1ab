import asyncio
import hashlib

import pytest

from osmcloud_common.blobstore import BodyTooLarge, _AsyncSourceReader


def _source(data: bytes, step: int):
    chunks = [data[i:i + step] for i in range(0, len(data), step)]

    async def read(_n: int) -> bytes:
        return chunks.pop(0) if chunks else b""
    return read


async def test_reader_counts_hashes_and_serves_exact_sizes():
    data = bytes(range(256)) * 1000
    reader = _AsyncSourceReader(_source(data, 7000), asyncio.get_running_loop(), limit=None)
    parts = []
    while True:
        part = await asyncio.to_thread(reader.read, 65536)
        if not part:
            break
        parts.append(part)
    assert b"".join(parts) == data
    assert all(len(p) == 65536 for p in parts[:-1])
    assert reader.size == len(data) and reader.sha256.hexdigest() == hashlib.sha256(data).hexdigest()


async def test_reader_stops_once_the_limit_is_passed():
    reader = _AsyncSourceReader(_source(b"x" * 5000, 1000), asyncio.get_running_loop(), limit=4500)
    with pytest.raises(BodyTooLarge):
        await asyncio.to_thread(reader.read, 10_000)
