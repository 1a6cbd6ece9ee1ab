"""The admin API every service serves under /admin/api/<service>/ (docs/admin-openapi.yaml).

Separate from the user API: the gateway sends /admin/api/<service>/ to that service with no
user authentication (no X-User-Id ever reaches these routes), and every route here checks the
operator credential itself (operators.py). Every call is written to the audit log with the
operator, the account it concerns, the client address and the outcome; refused calls too.

Each service gets these routes (services add their own with `AdminApi.route`):
  GET    .../audit                     the service's audit entries (?user_id, action, since, limit)
  GET    .../health                    readiness checks, outbox backlog, consumer lag
  GET    .../dead-letters              events its consumer set aside, with the error
  POST   .../dead-letters/{id}/replay  applies the event again (once: processed ids are kept)
  DELETE .../dead-letters/{id}         discards it"""

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from bson import ObjectId
from bson.errors import InvalidId

from .domain_errors import DomainError
from .errors import ApiError, BadRequest, Conflict, NotFound
from .events import Event
from .http import CHECKS_KEY
from .logging import get_logger
from .operators import OperatorTokens

if TYPE_CHECKING:
    from .runtime import Runtime

log = get_logger(__name__)

AdminHandler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]
MAX_DEAD_LETTERS = 200
AUDITED_USER = "audited_user_id"  # a handler sets request[AUDITED_USER] when the path names no account


def client_address(request: web.Request) -> str | None:
    """The client's address as the gateway saw it (nginx overwrites X-Real-IP)."""
    return request.headers.get("X-Real-IP") or None


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"'{name}' must be a whole number from {low} to {high}") from None
    if not low <= value <= high:
        raise BadRequest(f"'{name}' must be from {low} to {high}")
    return value


def query_time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"'{name}' must be an ISO 8601 time with its offset, e.g. 2026-01-31T12:00:00+00:00") from None
    if value.tzinfo is None:
        raise BadRequest(f"'{name}' needs a UTC offset (e.g. +00:00)")
    return value


class AdminApi:
    def __init__(self, runtime: "Runtime", app: web.Application) -> None:
        self.rt, self.app = runtime, app
        self.tokens = OperatorTokens(runtime.settings.operator_token_sha256)
        self.prefix = f"/admin/api/{runtime.settings.service_name}"
        self.dead_letters = runtime.db["dead_letters"]
        self.route("GET", "/audit", self._audit, action=None)
        self.route("GET", "/health", self._health, action=None)
        self.route("GET", "/dead-letters", self._list_dead_letters, action="dead-letters-listed")
        self.route("POST", "/dead-letters/{letter_id}/replay", self._replay, action="dead-letter-replayed")
        self.route("DELETE", "/dead-letters/{letter_id}", self._discard, action="dead-letter-discarded")

    def route(self, method: str, path: str, handler: AdminHandler, *, action: str | None) -> None:
        """Adds an operator-only route; `action` names it in the audit log (None: a read of the
        log or of health, not recorded)."""
        async def guarded(request: web.Request) -> web.StreamResponse:
            address = client_address(request)
            try:
                operator = self.tokens.operator_of(request)
            except ApiError as exc:
                if exc.status != 404:  # a wrong or missing credential is worth knowing about
                    await self.rt.audit.record("admin-refused", actor="unknown", address=address, outcome=exc.code,
                                               detail={"method": request.method, "path": request.path})
                raise
            outcome = "ok"
            try:
                return await handler(request, operator)
            except (ApiError, DomainError) as exc:  # the app maps a domain error to its answer
                outcome = exc.code
                raise
            except Exception:
                outcome = "internal"
                raise
            finally:
                if action:
                    # the account concerned: the path's, or the one a lookup found (AUDITED_USER)
                    user_id = request.get(AUDITED_USER) or request.match_info.get("user_id")
                    await self.rt.audit.record(action, actor=operator, user_id=user_id,
                                               address=address, outcome=outcome,
                                               detail={"method": request.method, "path": request.path})
        self.app.router.add_route(method, self.prefix + path, guarded)

    # ------------------------------------------------------------ common routes
    async def _audit(self, request: web.Request, operator: str) -> web.Response:
        entries = await self.rt.audit.query(user_id=request.query.get("user_id") or None,
                                            action=request.query.get("action") or None,
                                            since=query_time(request, "since"),
                                            limit=query_int(request, "limit", 100, 1, 500))
        return web.json_response({"service": self.rt.settings.service_name, "entries": entries})

    async def _health(self, request: web.Request, operator: str) -> web.Response:
        checks: dict[str, bool] = {}
        for name, check in request.app[CHECKS_KEY].items():
            try:
                checks[name] = await check() is True
            except Exception:
                checks[name] = False
        backlog = {name: {"documents": n, "oldest_seconds": age} for name, (n, age) in self.rt.relay.backlog().items()}
        lag = [{"group": g, "topic": t, "partition": p, "lag": n}
               for (g, t, p), n in sorted(self.rt.lag_monitor.lag.items())]
        consumer = self.rt.consumer
        return web.json_response({"service": self.rt.settings.service_name, "ready": all(checks.values()),
                                  "checks": checks, "outbox_backlog": backlog, "consumer_lag": lag,
                                  "dead_letters": await self.dead_letters.count_documents({}),
                                  "events_handled": consumer.handled if consumer else 0})

    async def _list_dead_letters(self, request: web.Request, operator: str) -> web.Response:
        limit = query_int(request, "limit", 50, 1, MAX_DEAD_LETTERS)
        docs = await self.dead_letters.find({}).sort("at", -1).limit(limit).to_list(None)
        return web.json_response({"service": self.rt.settings.service_name,
                                  "dead_letters": [dead_letter_view(d) for d in docs]})

    async def _letter(self, request: web.Request) -> dict[str, Any]:
        try:
            letter_id = ObjectId(request.match_info["letter_id"])
        except (InvalidId, TypeError):
            raise NotFound("no such dead letter (ids are 24 hex characters)", code="dead_letter_not_found") from None
        doc = await self.dead_letters.find_one({"_id": letter_id})
        if doc is None:
            raise NotFound("no such dead letter (replayed or discarded already?)", code="dead_letter_not_found")
        return doc

    async def _replay(self, request: web.Request, operator: str) -> web.Response:
        doc = await self._letter(request)
        if "event" not in doc:
            raise Conflict("this dead letter is not a readable event; it can only be discarded",
                           code="not_replayable")
        event = Event.model_validate(doc["event"])
        try:
            applied = await self.rt.apply_handed_over([event])
        except Exception as exc:
            await self.dead_letters.update_one({"_id": doc["_id"]},
                                               {"$set": {"error": repr(exc), "replay_failed_at": self.rt.clock.now()}})
            raise Conflict(f"the event failed again and stays set aside: {exc!r}"[:500], code="replay_failed") from exc
        await self.dead_letters.delete_one({"_id": doc["_id"]})
        log.info("dead letter replayed", event_id=event.id, event_type=event.type, applied=applied, operator=operator)
        return web.json_response({"replayed": str(doc["_id"]), "event_id": event.id, "applied": applied == 1})

    async def _discard(self, request: web.Request, operator: str) -> web.Response:
        doc = await self._letter(request)
        await self.dead_letters.delete_one({"_id": doc["_id"]})
        return web.json_response({"discarded": str(doc["_id"])})


def dead_letter_view(doc: dict[str, Any]) -> dict[str, Any]:
    event = doc.get("event") or {}
    return {"id": str(doc["_id"]), "at": doc["at"].isoformat() if doc.get("at") else None,
            "user_id": doc.get("user_id"), "event_type": event.get("type") or "unreadable",
            "event_id": event.get("id"), "error": doc.get("error"), "event": event or None,
            "raw": doc.get("raw", "")[:2000] if "raw" in doc else None}
