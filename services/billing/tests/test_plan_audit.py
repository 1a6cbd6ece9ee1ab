"""billing's plan-request audit sees a refused Start as the domain error it is (routes'
native_error answers it outside the middleware) and records the error's code."""

from types import SimpleNamespace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from osmcloud_billing.errors import StartNotAvailable
from osmcloud_billing.plan_audit import plan_request_middleware
from osmcloud_billing.routes import native_error
from osmcloud_common.domain_errors import map_domain_errors
from osmcloud_common.http import create_app


class FakeAudit:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    async def record(self, action: str, **fields: Any) -> None:
        self.entries.append({"action": action, **fields})


async def test_a_refused_start_is_answered_as_before_and_audited_with_its_code() -> None:
    app = create_app("billing")
    map_domain_errors(app, native_error)
    audit = FakeAudit()
    app.middlewares.append(plan_request_middleware(SimpleNamespace(audit=audit)))  # type: ignore[arg-type]

    async def start(request: web.Request) -> web.Response:
        raise StartNotAvailable("the Start plan is not available: this account has Pro (active)")
    app.router.add_post("/api/billing/start", start)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        answer = await client.post("/api/billing/start", headers={"X-User-Id": "u1", "X-Real-IP": "192.0.2.8"})
        assert answer.status == 409
        assert (await answer.json())["error"]["code"] == "start_not_available"
    finally:
        await client.close()
    assert [(e["action"], e["actor"], e["outcome"], e["detail"]) for e in audit.entries] == [
        ("plan-requested", "u1", "start_not_available", {"asked": "start"})]
