"""Request bodies as the application's upload sources: a body the client cut off (the
connection dropped, a malformed chunk) becomes the domain's UploadIncomplete."""

from collections.abc import Awaitable, Callable

from aiohttp.client_exceptions import ClientPayloadError
from aiohttp.http_exceptions import HttpProcessingError

from .errors import UploadIncomplete

CUT_OFF = (ClientPayloadError, ConnectionError, HttpProcessingError)


def complete_or_refused(read: Callable[[int], Awaitable[bytes]]) -> Callable[[int], Awaitable[bytes]]:
    async def reader(n: int) -> bytes:
        try:
            return await read(n)
        except CUT_OFF as exc:
            raise UploadIncomplete(f"the upload was cut off before it ended ({exc.__class__.__name__})") from exc
    return reader
