"""gzip on the way in and out, without holding a whole file: OsmAnd's app uploads every file
as gzip and gunzips every download. files stores the uncompressed content (the same bytes
the native API serves, hashed and counted the same way) and gzips again when it serves a
/userdata/ download: "an equivalent gzip of the same content"."""

import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

GZIP_WBITS = 31            # zlib's window bits for the gzip container (header + CRC trailer)
READ_SIZE = 256 * 1024     # compressed bytes asked of the source at a time


class NotGzip(Exception):
    """The body is not gzip, or a cut-off or broken gzip."""


class Gunzip:
    """An async reader of uncompressed bytes over an async source of gzip bytes
    (`source(n)` gives at most n bytes, b"" at the end). Several gzip members one after
    another are one file (as `gzip` and Java's GZIPInputStream read them). At the end it
    checks that the last member was complete, so a cut-off body is never taken for a file.
    `compressed` counts the gzip bytes read: the zip size."""

    def __init__(self, source: Callable[[int], Awaitable[bytes]]) -> None:
        self._source = source
        self._inflater = zlib.decompressobj(GZIP_WBITS)
        self._input = b""
        self._in_member = False   # bytes of an unfinished member were fed
        self.members = 0          # complete members seen
        self.compressed = 0

    async def read(self, n: int) -> bytes:
        while True:
            if not self._input:
                chunk = await self._source(READ_SIZE)
                if not chunk:
                    if self._in_member:
                        raise NotGzip("the gzip data ends before its last member is complete (cut off?)")
                    if self.members == 0:
                        raise NotGzip("the file part is empty, not gzip")
                    return b""
                self.compressed += len(chunk)
                self._input = chunk
            data, self._input = self._input, b""
            self._in_member = True
            try:
                out = self._inflater.decompress(data, max(1, n))
            except zlib.error as exc:
                raise NotGzip(f"the file part is not valid gzip ({exc})") from None
            if self._inflater.eof:
                # a member ended: anything after it must be another member
                self.members += 1
                self._in_member = False
                self._input = self._inflater.unused_data
                self._inflater = zlib.decompressobj(GZIP_WBITS)
            else:
                self._input = self._inflater.unconsumed_tail
            if out:
                return out


async def gzip_chunks(chunks: AsyncIterator[bytes], level: int = 6) -> AsyncIterator[bytes]:
    """gzip of a stream of chunks, chunk by chunk (one gzip member)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, GZIP_WBITS)
    async for chunk in chunks:
        out = compressor.compress(chunk)
        if out:
            yield out
    yield compressor.flush()
