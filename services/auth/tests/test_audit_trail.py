"""auth's audit middleware sees a refused sign-in as the domain error it is (the app maps it to
the native or OsmAnd answer outside the middleware) and records it with the error's code."""

from types import SimpleNamespace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from osmcloud_auth.audit_trail import audit_middleware
from osmcloud_auth.errors import CodeRejected
from osmcloud_auth.osmand_compat import osmand_error
from osmcloud_auth.routes import native_error
from osmcloud_common.domain_errors import map_domain_errors
from osmcloud_common.http import create_app


class FakeAudit:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    async def record(self, action: str, **fields: Any) -> None:
        self.entries.append({"action": action, **fields})


async def test_a_refused_sign_in_is_answered_as_before_and_audited_with_its_code() -> None:
    app = create_app("auth")
    map_domain_errors(app, native_error, osmand_error)
    audit = FakeAudit()
    app.middlewares.append(audit_middleware(SimpleNamespace(audit=audit), store=None))  # type: ignore[arg-type]

    async def sign_in(request: web.Request) -> web.Response:
        raise CodeRejected("the code is wrong", code="code_wrong")
    app.router.add_post("/api/auth/sessions", sign_in)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        answer = await client.post("/api/auth/sessions", json={"email": "ann@example.org", "code": "000000"},
                                   headers={"X-Real-IP": "192.0.2.7"})
        assert answer.status == 400
        assert (await answer.json())["error"]["code"] == "code_wrong"
    finally:
        await client.close()
    assert [(e["action"], e["outcome"], e["address"], e["detail"]) for e in audit.entries] == [
        ("login-refused", "code_wrong", "192.0.2.7", {"email": "ann@example.org"})]
    assert "000000" not in repr(audit.entries)
