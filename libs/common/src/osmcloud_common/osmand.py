"""OsmAnd's `/userdata/` wire protocol, the parts every service shares: its error shape and the
authentication of a compat request by `deviceid` + `accessToken`.

Errors: HTTP 400 with `{"error": {"errorCode": N, "message": "..."}}`; the app branches on N.
Authentication: the app sends the integer device id and the access token as query or form
parameters, which nginx's auth sub-request cannot see in a body, so each service checks them
itself by asking auth (`GET /internal/verify-device`). auth's device records stay the one
source of truth: no cache, so a logged-out device is refused on its very next call."""

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import aiohttp
from aiohttp import web

from .errors import ApiError


class ErrorCode(IntEnum):
    EMAIL_INVALID = 101           # e-mail malformed or unknown
    NO_VALID_SUBSCRIPTION = 102
    USER_NOT_REGISTERED = 103
    TOKEN_INVALID = 104           # the mailed code is wrong or expired
    DEVICE_NOT_AUTHORIZED = 105   # deviceid/accessToken invalid (every authenticated call)
    FILE_NOT_AVAILABLE = 106
    GZIP_ONLY = 107
    SIZE_EXCEEDED = 108
    SUBSCRIPTION_USED_BY_OTHER = 109
    SUBSCRIPTION_EXPIRED = 110
    USER_ALREADY_REGISTERED = 111


# Not one of the protocol's codes: a request so malformed that none of them fits (a body that
# is not JSON, an unsupported `action`). Still the compat shape, still HTTP 400.
MALFORMED_REQUEST = 400

# The apps' own status for "the server cannot answer now" (BackupHelper
# STATUS_SERVER_TEMPORALLY_UNAVAILABLE_ERROR, which the Android and iOS apps show as "service is
# not available, please try later"): what every limit, timeout and outage answers on /userdata/,
# with a message that says when to retry. The gateway's own answers use it too
# (gateway/default.conf.template, @osmand_*).
TRY_LATER = 6


class OsmandError(ApiError):
    """An error in the protocol's shape; the app reads `errorCode`."""
    status = 400

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message, code=f"osmand_{int(error_code)}")
        self.error_code = int(error_code)

    def body(self) -> dict[str, Any]:
        return {"error": {"errorCode": self.error_code, "message": self.message}}


def as_osmand_error(status: int, message: str, retry_after: int | None = None) -> "OsmandError":
    """Any other refusal of a /userdata/ call, in the protocol's shape (the app cannot read
    our native one): a limit (429), an outage or a failure (5xx) answers TRY_LATER with when to
    retry; anything else is a request none of the protocol's codes fits."""
    if status == 429 or status >= 500:
        return try_later(message, retry_after)
    return OsmandError(MALFORMED_REQUEST, message)


def try_later(message: str, retry_after: int | None = None) -> "OsmandError":
    """TRY_LATER with when to retry: a limit, an outage or a failure, as the app shows them."""
    when = f"retry in {retry_after} s" if retry_after else "retry in a few seconds"
    return OsmandError(TRY_LATER, f"{message.rstrip('.; ')}; {when}")


async def compat_params(request: web.Request) -> dict[str, str]:
    """The request's parameters: the query, plus a form body's fields (form wins)."""
    params = dict(request.query)
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data") and request.can_read_body:
        try:
            form = await request.post()  # aiohttp caches it: later calls see the same fields
        except Exception:
            raise OsmandError(MALFORMED_REQUEST, "the form body could not be read") from None
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def device_credentials(params: dict[str, str]) -> tuple[int, str]:
    """(integer device id, access token) or 105 — the app's answer to any bad credential."""
    raw_id, token = (params.get("deviceid") or "").strip(), (params.get("accessToken") or "").strip()
    if not raw_id or not token:
        raise OsmandError(ErrorCode.DEVICE_NOT_AUTHORIZED, "send deviceid and accessToken (query or form)")
    try:
        device_num = int(raw_id)
    except ValueError:
        raise OsmandError(ErrorCode.DEVICE_NOT_AUTHORIZED,
                          "deviceid must be the integer id device-register answered, not the phone's UUID") from None
    return device_num, token


@dataclass(frozen=True)
class CompatIdentity:
    user_id: str
    device_id: str
    user_num: int
    device_num: int

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "CompatIdentity":
        return cls(str(body["user_id"]), str(body["device_id"]), int(body["user_num"]), int(body["device_num"]))

    def to_json(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "device_id": self.device_id, "user_num": self.user_num,
                "device_num": self.device_num}


class CompatAuthenticator:
    """For files and trash: authenticates a compat request by asking auth, every time."""

    def __init__(self, session: aiohttp.ClientSession, auth_url: str, gateway_secret: str) -> None:
        self.session, self.auth_url, self.secret = session, auth_url.rstrip("/"), gateway_secret

    async def authenticate(self, request: web.Request) -> CompatIdentity:
        return await self.verify(*device_credentials(await compat_params(request)))

    async def authenticate_query(self, request: web.Request) -> CompatIdentity:
        """From the query only, never reading the body: for upload-file, whose multipart body
        must stream (compat_params would read all of it into memory)."""
        return await self.verify(*device_credentials(dict(request.query)))

    async def verify(self, device_num: int, token: str) -> CompatIdentity:
        try:
            async with self.session.get(f"{self.auth_url}/internal/verify-device",
                                        params={"deviceid": str(device_num), "accessToken": token},
                                        headers={"X-Gateway-Secret": self.secret},
                                        timeout=aiohttp.ClientTimeout(total=10)) as response:
                if response.status == 401:
                    raise OsmandError(ErrorCode.DEVICE_NOT_AUTHORIZED,
                                      "the device is not logged in (unknown deviceid, wrong or revoked accessToken)")
                if response.status != 200:
                    raise ApiError("authentication is unavailable right now; retry shortly",
                                   code="unavailable", status=503)
                return CompatIdentity.from_json(await response.json())
        except aiohttp.ClientError as exc:
            raise ApiError("authentication is unavailable right now; retry shortly",
                           code="unavailable", status=503) from exc
