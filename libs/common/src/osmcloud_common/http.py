"""The aiohttp app factory every service uses: /healthz, /readyz, /metrics, JSON errors,
request ids, and the identity the gateway passes on."""

import asyncio
import hmac
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic_core
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, ValidationError

from . import tracing
from .errors import ApiError, BadRequest, Unauthorized
from .faults import DISK_FULL, unavailable_dependency
from .logging import get_logger
from .osmand import OsmandError, as_osmand_error

log = get_logger(__name__)

ReadinessCheck = Callable[[], Awaitable[bool]]
ModelT = TypeVar("ModelT", bound=BaseModel)

REGISTRY_KEY = web.AppKey("metrics_registry", CollectorRegistry)
CHECKS_KEY = web.AppKey("readiness_checks", dict[str, ReadinessCheck])
SECRET_KEY = web.AppKey("gateway_secret", str)

PUBLIC_PATHS = ("/healthz", "/readyz", "/metrics")
OSMAND_PREFIX = "/userdata/"  # OsmAnd's protocol: every error in its shape (osmand.py)


@dataclass(frozen=True)
class Identity:
    user_id: str
    device_id: str


def identity(request: web.Request) -> Identity:
    """The user and device the gateway authenticated (auth's sub-request); services never
    authenticate on their own and refuse requests that carry no identity."""
    user_id = request.headers.get("X-User-Id", "")
    if not user_id:
        raise Unauthorized("authentication required: send 'Authorization: Bearer <device token>'")
    return Identity(user_id=user_id, device_id=request.headers.get("X-Device-Id", ""))


async def json_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    try:
        raw = await request.json()
    except Exception:
        raise BadRequest("the request body must be JSON") from None
    return validated(raw, model)


def validated(raw: Any, model: type[ModelT]) -> ModelT:
    """`raw` (a decoded JSON body) as `model`; BadRequest naming each problem otherwise."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        raise BadRequest(f"invalid request: {problems}") from None


def json_answer(data: Any, status: int = 200) -> web.Response:
    """A JSON response as web.json_response makes it, encoded by pydantic-core's serializer
    (compact UTF-8; about 4x less CPU than the json module on a 10,000-file listing), for
    large answers: the changes feed and the listing."""
    return web.Response(body=pydantic_core.to_json(data), status=status, content_type="application/json",
                        charset="utf-8")


def error_response(error: ApiError, path: str = "") -> web.Response:
    if path.startswith(OSMAND_PREFIX) and not isinstance(error, OsmandError):
        retry = error.details.get("retry_after_seconds")
        error = as_osmand_error(error.status, error.message, retry if isinstance(retry, int) else None)
    return web.json_response(error.body(), status=error.status)


# the status a request whose client went away mid-answer is counted with (nginx's "client closed request")
CLIENT_GONE = 499
# the longest one readiness check may take before it counts as failed
READINESS_CHECK_SECONDS = 4.0
# seconds a client is told to wait before retrying while a dependency is away
DEPENDENCY_RETRY_AFTER = 5


def dependency_unavailable_response(away: str, path: str) -> web.Response:
    """503 JSON (OsmAnd's "try later" on /userdata/) with Retry-After: what a request that met
    an unreachable dependency is answered, instead of a 500."""
    if away == DISK_FULL:  # 503, not 507: to a client both mean "not now, nothing was stored"
        error = ApiError("the server's storage is full right now; nothing was stored, retry later",
                         code="storage_full", status=503, details={"retry_after_seconds": DEPENDENCY_RETRY_AFTER})
    else:
        error = ApiError(f"the {away} is not reachable right now; retry shortly", code="unavailable", status=503,
                         details={"retry_after_seconds": DEPENDENCY_RETRY_AFTER})
    response = error_response(error, path)
    response.headers["Retry-After"] = str(DEPENDENCY_RETRY_AFTER)
    return response


def create_app(service: str, *, gateway_secret: str = "",
               clock_report: Callable[[], dict[str, Any]] | None = None,
               serving: Callable[[], bool] | None = None) -> web.Application:
    """The app with its middleware. `serving()` False (a replica still setting up: indexes,
    bucket) answers every request but /healthz, /readyz and /metrics 503 JSON at once, so the
    gateway passes it to another replica instead of waiting on this one."""
    registry = CollectorRegistry()
    secret_bytes = gateway_secret.encode()
    requests = Counter("http_requests_total", "HTTP requests", ["method", "route", "status"], registry=registry)
    latency = Histogram("http_request_seconds", "HTTP request latency", ["method", "route"], registry=registry)
    # requests refused with a reason a person can act on (4xx), by that reason: quota refusals
    # are reason=~"quota_exceeded|file_quota_exceeded|file_too_large" (deploy/prometheus)
    refusals = Counter("http_refusals_total", "requests refused, by the error's code", ["method", "route", "reason"],
                       registry=registry)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
        with tracing.server_span(request.method, route, request.path, request.headers, request_id) as span:
            response = await answer(request, handler, request_id, route)
            tracing.finish_server_span(span, response.status)
        return response

    async def answer(request: web.Request, handler: Handler, request_id: str, route: str) -> web.StreamResponse:
        started = time.perf_counter()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        try:
            if gateway_secret and request.path not in PUBLIC_PATHS:
                offered = request.headers.get("X-Gateway-Secret", "").encode()
                if not hmac.compare_digest(offered, secret_bytes):  # constant time
                    raise Unauthorized("requests must come through the gateway")
            if serving is not None and request.path not in PUBLIC_PATHS and not serving():
                raise ApiError(f"this {service} replica is starting; retry shortly", code="unavailable", status=503,
                               details={"retry_after_seconds": 1})
            response = await handler(request)
            status = response.status
        except ApiError as exc:
            response = error_response(exc, request.path)
            status = response.status
            if exc.status in (429, 503) and isinstance(exc.details.get("retry_after_seconds"), int):
                response.headers["Retry-After"] = str(exc.details["retry_after_seconds"])
            if exc.status < 500:  # OsmAnd's shape answers 400 for everything: count by the error's own
                refusals.labels(request.method, route, exc.reason).inc()
        except web.HTTPException as exc:
            if exc.status >= 400:
                message = exc.reason if exc.text is None or exc.text.startswith(str(exc.status)) else exc.text
                if request.path.startswith(OSMAND_PREFIX) and exc.status == 405:
                    # a method the app never sends: OsmAnd's body, but HTTP's own 405 and Allow
                    # (as the gateway answers it), so clients and checkers can tell what is allowed
                    response = web.json_response({"error": {"errorCode": 405, "message": message}}, status=405,
                                                 headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"})
                elif request.path.startswith(OSMAND_PREFIX):
                    response = error_response(ApiError(message, status=exc.status), request.path)
                else:
                    response = web.json_response(
                        {"error": {"code": exc.reason.lower().replace(" ", "_"), "message": message}},
                        status=exc.status, headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"})
                status = response.status
            else:
                raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            away = unavailable_dependency(exc)
            if isinstance(exc, ConnectionError) and (request.transport is None or request.transport.is_closing()):
                # the client went away mid-answer (a download cancelled): no one to answer, no fault
                log.info("client went away", path=request.path, error=f"{type(exc).__name__}: {str(exc)[:300]}")
                response = web.Response(status=CLIENT_GONE)
                status = CLIENT_GONE
            elif away is not None:  # not the request's fault, nor a bug: the client may retry
                log.warning("dependency unavailable", path=request.path, dependency=away,
                            error=f"{type(exc).__name__}: {str(exc)[:300]}")
                response = dependency_unavailable_response(away, request.path)
                status = 503
            else:
                log.exception("unhandled error", path=request.path)
                if request.path.startswith(OSMAND_PREFIX):
                    response = error_response(ApiError(f"internal error (request {request_id})", status=500),
                                              request.path)
                else:
                    response = web.json_response(
                        {"error": {"code": "internal", "message": "internal error; see the service log",
                                   "request_id": request_id}}, status=500)
                status = 500  # counted as what it was, whatever shape answered it
        finally:
            requests.labels(request.method, route, str(status)).inc()
            latency.labels(request.method, route).observe(time.perf_counter() - started)
            structlog.contextvars.unbind_contextvars("request_id")
        if not response.prepared:
            if request.writer.output_size and request.transport is not None:
                # the handler failed after its answer had started (a stream cut by S3, ...): no
                # error can follow the bytes already sent, so the connection is cut and the
                # client sees an incomplete answer, never one that looks whole
                request.transport.abort()
            response.headers["X-Request-Id"] = request_id
        return response

    app = web.Application(middlewares=[middleware], client_max_size=1024 * 1024)
    app[REGISTRY_KEY] = registry
    app[CHECKS_KEY] = {}
    app[SECRET_KEY] = gateway_secret

    async def healthz(_: web.Request) -> web.Response:
        body: dict[str, Any] = {"status": "alive", "service": service}
        if clock_report is not None:  # the settable test clock only (TEST_CLOCK=true)
            body["clock"] = clock_report()
        return web.json_response(body)

    async def readyz(request: web.Request) -> web.Response:
        checks = request.app[CHECKS_KEY]
        # a check that hangs (a dependency that accepts connections but never answers) counts
        # as failed after READINESS_CHECK_SECONDS: /readyz itself answers quickly, always
        results = await asyncio.gather(
            *(asyncio.wait_for(check(), READINESS_CHECK_SECONDS) for check in checks.values()), return_exceptions=True)
        status = {name: (result is True) for name, result in zip(checks, results, strict=True)}
        ready = all(status.values())
        return web.json_response({"ready": ready, "checks": status}, status=200 if ready else 503)

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(request.app[REGISTRY_KEY])
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


def add_readiness_check(app: web.Application, name: str, check: ReadinessCheck) -> None:
    app[CHECKS_KEY][name] = check
