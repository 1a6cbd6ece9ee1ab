"""Errors a person can act on: JSON `{"error": {"code", "message"}}` with a fitting status."""

from typing import Any


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status
        self.details = details or {}

    @property
    def reason(self) -> str:
        """Why the request was refused, for metrics: the code, unless a translation into
        another protocol's shape kept the original one (`translated_from`)."""
        return getattr(self, "_reason", None) or self.code

    def translated_from(self, original: "ApiError") -> "ApiError":
        self._reason = original.reason
        return self

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error.update(self.details)
        return {"error": error}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"
