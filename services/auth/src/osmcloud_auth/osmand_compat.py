"""OsmAnd's /userdata/ account endpoints, answered on auth's own stores and events: the same
users, devices, codes, limits and deletion path as the native API, only spoken the way
OsmAnd's apps speak (form/query/JSON parameters, integer ids, errors 101-111).

A compat call is authenticated here, not by the gateway (nginx cannot read form bodies):
`deviceid` (the device's integer id) + `accessToken`, checked against the same device record
a bearer token is, on every call — a device logged out by either API gets 105 at once."""

from typing import Any

from aiohttp import web

from osmcloud_common.domain_errors import DomainError
from osmcloud_common.errors import ApiError
from osmcloud_common.osmand import (
    MALFORMED_REQUEST,
    CompatIdentity,
    ErrorCode,
    OsmandError,
    compat_params,
    device_credentials,
    try_later,
)

from .account_deletion import AccountDeletion
from .accounts import VIA_OSMAND, Accounts
from .codes import Codes
from .domain import Purpose, digest
from .errors import (
    AccountGone,
    CodeRejected,
    InvalidEmail,
    MailFailed,
    OrderRefused,
    PurchasesUnavailable,
    TooManyCodes,
)
from .osmand_orders import OrderIds
from .osmand_views import compat_email, device_json, user_json
from .routes import client_address, native_error
from .store import AuthStore

MAX_FIELD = 200
MAX_ORDERID = 20_000


def _field(params: dict[str, str], name: str) -> str:
    return (params.get(name) or "").strip()[:MAX_FIELD]


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except Exception:  # the parser's complaint is the client's mistake, not ours: no traceback
        raise OsmandError(MALFORMED_REQUEST, "the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise OsmandError(MALFORMED_REQUEST, "the request body must be a JSON object")
    return body


def _order_field(params: dict[str, str]) -> str:
    """The orderid as sent (a store order token can be long: not cut at MAX_FIELD)."""
    return (params.get("orderid") or "").strip()[:MAX_ORDERID]


def osmand_error(error: DomainError) -> ApiError:
    """Auth's domain errors on /userdata/, in the protocol's codes; limits and outages as the
    apps' "try later" with when (the metrics keep counting them by their own code)."""
    if isinstance(error, TooManyCodes):
        return try_later(error.message, error.retry_after_seconds).translated_from(native_error(error))
    if isinstance(error, (MailFailed, PurchasesUnavailable)):
        return try_later(error.message).translated_from(native_error(error))
    if isinstance(error, CodeRejected):
        return OsmandError(ErrorCode.TOKEN_INVALID, error.message)
    if isinstance(error, InvalidEmail):
        return OsmandError(ErrorCode.EMAIL_INVALID, error.message)
    if isinstance(error, AccountGone):
        return OsmandError(ErrorCode.DEVICE_NOT_AUTHORIZED, error.message)
    if isinstance(error, OrderRefused):
        return OsmandError(ErrorCode.SUBSCRIPTION_USED_BY_OTHER if error.outcome == "other_account"
                           else ErrorCode.NO_VALID_SUBSCRIPTION, error.message)
    return native_error(error)  # none of the /userdata/ calls raises another: the middleware's shape


async def verify_device(store: AuthStore, device_num: int, token: str) -> CompatIdentity | None:
    device = await store.device_by_num_and_token(device_num, digest(token))
    if device is None or device.get("user_num") is None:
        return None
    return CompatIdentity(device["user_id"], device["device_id"], int(device["user_num"]), int(device["num"]))


class OsmandAccounts:
    def __init__(self, store: AuthStore, codes: Codes, accounts: Accounts, deletion: AccountDeletion,
                 orders: OrderIds) -> None:
        self.store, self.codes, self.accounts, self.deletion, self.orders = store, codes, accounts, deletion, orders

    def register(self, app: web.Application) -> None:
        app.router.add_post("/userdata/user-register", self.user_register)
        app.router.add_post("/userdata/device-register", self.device_register)
        app.router.add_post("/userdata/user-update-orderid", self.user_update_orderid)
        app.router.add_get("/userdata/user-validate-sub", self.user_validate_sub)
        app.router.add_post("/userdata/send-code", self.send_code)
        app.router.add_post("/userdata/auth/confirm-code", self.confirm_code)
        app.router.add_post("/userdata/delete-account", self.delete_account)
        app.router.add_get("/internal/verify-device", self.verify_device)

    # ------------------------------------------------------------ authentication
    async def _authenticate(self, request: web.Request) -> CompatIdentity:
        device_num, token = device_credentials(await compat_params(request))
        who = await verify_device(self.store, device_num, token)
        if who is None:
            raise OsmandError(ErrorCode.DEVICE_NOT_AUTHORIZED,
                              "the device is not logged in (unknown deviceid, wrong or revoked accessToken)")
        return who

    async def verify_device(self, request: web.Request) -> web.Response:
        """For files and trash (osmcloud_common.osmand.CompatAuthenticator): the identity, or 401."""
        try:
            device_num, token = device_credentials(dict(request.query))
        except OsmandError:
            return web.json_response({"error": {"code": "unauthorized", "message": "bad deviceid/accessToken"}},
                                     status=401)
        who = await verify_device(self.store, device_num, token)
        if who is None:
            return web.json_response({"error": {"code": "unauthorized", "message": "device not logged in"}},
                                     status=401)
        return web.json_response(who.to_json())

    # ------------------------------------------------------------ sign-up and login
    async def user_register(self, request: web.Request) -> web.Response:
        params = await compat_params(request)
        email = compat_email(params.get("email"))
        # as in the reference, where the account exists from the first user-register on: a
        # sign-up still waiting for its code is a registered e-mail too (the app then logs in)
        known = await self.store.user_by_email(email) is not None or \
            await self.codes.any_requested(email, Purpose.OSMAND_LOGIN)
        if known and _field(params, "login") != "true":
            raise OsmandError(ErrorCode.USER_ALREADY_REGISTERED, "this e-mail is already registered; log in instead")
        orderid = _order_field(params)
        if orderid and not known:  # like the reference: checked for a sign-up, not for a login
            await self.orders.check_for_sign_up(orderid)
        # The account itself is created by device-register, once the mailed code proves the address.
        await self.codes.issue(email, Purpose.OSMAND_LOGIN, client_address(request))
        return web.json_response({"status": "ok"})

    async def device_register(self, request: web.Request) -> web.Response:
        params = await compat_params(request)
        email = compat_email(params.get("email"))
        user = await self.store.user_by_email(email)
        if user is None and not await self.codes.any_requested(email, Purpose.OSMAND_LOGIN):
            raise OsmandError(ErrorCode.USER_NOT_REGISTERED, "this e-mail is not registered; call user-register first")
        token = _field(params, "token")
        if not token:  # the app's login probe: "does this account exist?" — never a 200, no try spent
            raise OsmandError(ErrorCode.TOKEN_INVALID, "send the code mailed by user-register")
        signed = await self.accounts.sign_in(email, Purpose.OSMAND_LOGIN, token, client_address(request),
                                             via=VIA_OSMAND)
        orderid = _order_field(params)
        if orderid:
            await self.orders.link_quietly(signed.user["_id"], orderid)
        access_token, device = await self.accounts.register_osmand_device(
            signed, _field(params, "deviceid"), _field(params, "brand"), _field(params, "model"))
        return web.json_response(device_json({**device, "token": access_token}))

    async def user_update_orderid(self, request: web.Request) -> web.Response:
        """The call carries no credential, so it may only do what a verified order proves: the
        order goes through billing's purchase verification (102 for an unknown, expired or
        ineligible order, 109 for an order of another account) before it is linked (its plan
        applies); an unknown e-mail answers those too, and 101 only for a valid order, so
        without one nobody learns whether an e-mail is registered here. An empty orderid changes
        nothing (the reference cleared the account's order for anyone who knew the e-mail)."""
        params = await compat_params(request)
        email = compat_email(params.get("email"))
        orderid = _order_field(params)
        if not orderid:  # the call carries no credential: nothing of the account changes
            return web.json_response({"status": "ok"})
        user = await self.store.user_by_email(email)
        if user is None:  # the order is judged first, as for a registered e-mail: 102 / 109 alike
            await self.orders.check_for_sign_up(orderid)
            raise OsmandError(ErrorCode.EMAIL_INVALID, "this e-mail is not registered")
        await self.orders.link(user["_id"], orderid)
        return web.json_response({"status": "ok"})

    async def user_validate_sub(self, request: web.Request) -> web.Response:
        who = await self._authenticate(request)
        user = await self.store.user(who.user_id)
        if user is None:
            raise AccountGone("this account no longer exists")
        return web.json_response(user_json(user, who.user_num))

    # ------------------------------------------------------------ account deletion
    async def _email_of(self, who: CompatIdentity) -> str:
        """The account's own address. Like the reference, the e-mail or username in the body is
        not what counts: the code always goes to, and is checked for, the device's account."""
        return await self.deletion.email_of(who.user_id)

    async def send_code(self, request: web.Request) -> web.Response:
        who = await self._authenticate(request)
        body = await _json_object(request)
        if body.get("action") != "delete":
            raise OsmandError(MALFORMED_REQUEST, "the only supported action is 'delete'")
        await self.deletion.request_code(who.user_id, client_address(request), Purpose.OSMAND_DELETE_ACCOUNT)
        return web.json_response({"status": "ok"})

    async def confirm_code(self, request: web.Request) -> web.Response:
        """Says whether the deletion code is right without using it up: the app calls
        delete-account with the same code next. Each call still counts as one try."""
        body = await _json_object(request)
        email = compat_email(body.get("username") if isinstance(body.get("username"), str) else None)
        # unauthenticated: an unknown e-mail answers like a wrong code (104), revealing nothing
        token = body.get("token")
        if not isinstance(token, str) or not token.strip():
            raise OsmandError(ErrorCode.TOKEN_INVALID, "send the code mailed by send-code")
        try:
            await self.codes.check(email, Purpose.OSMAND_DELETE_ACCOUNT, token.strip(), client_address(request),
                                   use=False)
        except CodeRejected:  # unauthenticated: never says which of these it was
            raise OsmandError(ErrorCode.TOKEN_INVALID,
                              "the code is wrong, expired or used up; ask for a new one") from None
        return web.json_response({"status": "ok"})

    async def delete_account(self, request: web.Request) -> web.Response:
        who = await self._authenticate(request)
        body = await _json_object(request)
        email = await self._email_of(who)
        token = body.get("token")
        if not isinstance(token, str) or not token.strip():
            raise OsmandError(ErrorCode.TOKEN_INVALID, "send the code mailed by send-code")
        await self.codes.check(email, Purpose.OSMAND_DELETE_ACCOUNT, token.strip(), client_address(request))
        await self.deletion.delete_account(who.user_id)
        return web.json_response({"status": "ok"})
