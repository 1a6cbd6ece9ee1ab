"""Domain errors: what a rule refuses, free of HTTP. Domain and application code raise them;
each API maps them to its own answer in one place (`map_domain_errors`): the native JSON shape
(errors.ApiError) or OsmAnd's /userdata/ shape (osmand.OsmandError)."""

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .errors import ApiError
from .http import OSMAND_PREFIX

ErrorMapper = Callable[["DomainError"], ApiError]


class DomainError(Exception):
    """A refusal a person can act on: `code` names the rule (machine-readable), `message` says
    what to do, `details` carries facts an answer may show (e.g. retry_after_seconds)."""

    code = "refused"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details: dict[str, Any] = details or {}


def map_domain_errors(app: web.Application, native: ErrorMapper, osmand: ErrorMapper | None = None) -> None:
    """Installs the app's one translation of domain errors: `osmand` for /userdata/ paths (when
    given), `native` for every other. The app's error middleware then answers the ApiError."""

    @web.middleware
    async def translate(request: web.Request,
                        handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        try:
            return await handler(request)
        except DomainError as exc:
            mapper = osmand if osmand is not None and request.path.startswith(OSMAND_PREFIX) else native
            raise mapper(exc) from exc

    app.middlewares.append(translate)


def status_mapper(statuses: dict[type[DomainError], int], default: int = 400) -> ErrorMapper:
    """A native mapper from a table of statuses by error class (the first base class listed
    wins): the answer keeps the error's code, message and details."""

    def native(error: DomainError) -> ApiError:
        status = next((s for kind in type(error).__mro__ for k, s in statuses.items() if k is kind), default)
        return ApiError(error.message, code=error.code, status=status, details=error.details)

    return native
