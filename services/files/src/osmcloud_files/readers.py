"""Upload sources as the upload paths read them: `read(n)` gives the next at most n bytes,
b"" at the end."""

from collections.abc import Awaitable, Callable

Reader = Callable[[int], Awaitable[bytes]]


def memory_reader(data: bytes) -> Reader:
    """Content held in memory."""
    offset = 0

    async def read(n: int) -> bytes:
        nonlocal offset
        chunk = data[offset:offset + n]
        offset += len(chunk)
        return chunk
    return read


def prefixed(prefix: bytes, rest: Reader) -> Reader:
    """`prefix` first (what was read ahead of the stream), then what `rest` gives."""
    given = 0

    async def read(n: int) -> bytes:
        nonlocal given
        if given < len(prefix):
            chunk = prefix[given:given + n]
            given += len(chunk)
            return chunk
        return await rest(n)
    return read


async def read_up_to(read: Reader, limit: int) -> tuple[bytes, bool]:
    """Reads up to `limit` bytes: (what was read, whether that is all there is)."""
    buf = bytearray()
    while len(buf) <= limit:
        chunk = await read(limit + 1 - len(buf))
        if not chunk:
            return bytes(buf), True
        buf += chunk
    return bytes(buf), False
