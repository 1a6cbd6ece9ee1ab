"""The native API's answer to each of files' refusals (errors.py): our JSON error shape,
with the status of the refusal's kind. The one place the native routes map domain errors."""

from collections.abc import Awaitable, Callable

from aiohttp import web

from osmcloud_common.errors import ApiError

from .errors import FilesError, InvalidInput, Missing, NotAllowed, OverLimit, Refused, VersionConflict
from .views import head_view

STATUS: tuple[tuple[type[FilesError], int], ...] = (
    (InvalidInput, 400), (NotAllowed, 403), (Missing, 404), (Refused, 409), (OverLimit, 413))


def api_error(error: FilesError) -> ApiError:
    status = next((s for kind, s in STATUS if isinstance(error, kind)), 400)
    details = error.details
    if isinstance(error, VersionConflict):
        details = {"head": head_view(error.current) if error.current else None}
    return ApiError(error.message, code=error.code, status=status, details=details)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def native_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turns a domain error into the shared error answer (rendered by the app's outer
    middleware). /userdata/ handlers map theirs to OsmAnd's shape themselves."""
    try:
        return await handler(request)
    except FilesError as exc:
        raise api_error(exc) from exc
