"""The native API's answer to each of files' refusals (errors.py): our JSON error shape,
with the status of the refusal's kind. The one place the native and admin routes map domain
errors (installed by app.py with osmcloud_common.domain_errors.map_domain_errors)."""

from osmcloud_common.domain_errors import DomainError
from osmcloud_common.errors import ApiError

from .errors import FilesError, InvalidInput, Missing, NotAllowed, OverLimit, Refused, TryLater, VersionConflict
from .views import head_view

STATUS: tuple[tuple[type[FilesError], int], ...] = (
    (InvalidInput, 400), (NotAllowed, 403), (Missing, 404), (Refused, 409), (OverLimit, 413), (TryLater, 429))


def api_error(error: DomainError) -> ApiError:
    status = next((s for kind, s in STATUS if isinstance(error, kind)), 400)
    details = error.details
    if isinstance(error, VersionConflict):
        details = {"head": head_view(error.current) if error.current else None}
    return ApiError(error.message, code=error.code, status=status, details=details)
