"""The streaming gunzip of OsmAnd uploads and the gzip of downloads."""

import gzip
import os

import pytest

from osmcloud_files.gzip_stream import Gunzip, NotGzip, gzip_chunks


def source_of(data: bytes, piece: int = 7):
    """An async source handing out `data` in small pieces, whatever was asked."""
    offset = 0

    async def read(n: int) -> bytes:
        nonlocal offset
        chunk = data[offset:offset + min(n, piece)]
        offset += len(chunk)
        return chunk
    return read


async def read_all(reader: Gunzip, n: int = 1000) -> bytes:
    out = bytearray()
    while chunk := await reader.read(n):
        assert len(chunk) <= n
        out += chunk
    return bytes(out)


@pytest.mark.parametrize("content", [b"", b"hello", os.urandom(200_000), b"a" * 3_000_000])
async def test_gunzips_what_gzip_made_and_counts_the_gzip_bytes(content):
    packed = gzip.compress(content)
    reader = Gunzip(source_of(packed, piece=4096))
    assert await read_all(reader) == content
    assert reader.compressed == len(packed)


async def test_several_members_are_one_file():
    packed = gzip.compress(b"first ") + gzip.compress(b"second")
    assert await read_all(Gunzip(source_of(packed))) == b"first second"


@pytest.mark.parametrize("body", [b"", b"not gzip at all", b"PK\x03\x04zipfile"])
async def test_not_gzip_is_refused(body):
    with pytest.raises(NotGzip):
        await read_all(Gunzip(source_of(body)))


async def test_a_cut_off_gzip_is_refused_at_the_end():
    packed = gzip.compress(os.urandom(50_000))
    with pytest.raises(NotGzip):
        await read_all(Gunzip(source_of(packed[:-5], piece=1000)))
    with pytest.raises(NotGzip):
        await read_all(Gunzip(source_of(packed[: len(packed) // 2], piece=1000)))


async def test_garbage_after_the_gzip_is_refused():
    with pytest.raises(NotGzip):
        await read_all(Gunzip(source_of(gzip.compress(b"x") + b"trailing")))


async def test_gzip_chunks_is_a_gzip_of_the_whole_stream():
    parts = [os.urandom(1000), b"", b"b" * 100_000, b"end"]

    async def chunks():
        for p in parts:
            yield p
    packed = b"".join([c async for c in gzip_chunks(chunks())])
    assert gzip.decompress(packed) == b"".join(parts)


async def test_gzip_of_nothing_is_a_valid_empty_gzip():
    async def none():
        for chunk in ():
            yield chunk
    assert gzip.decompress(b"".join([c async for c in gzip_chunks(none())])) == b""
