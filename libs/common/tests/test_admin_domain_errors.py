"""The admin API's guard records the outcome of a route that refuses with a domain error (the
app maps it to its answer outside the guard): the error's code, not "internal"."""

from types import SimpleNamespace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from osmcloud_common.admin import AdminApi
from osmcloud_common.domain_errors import DomainError, map_domain_errors, status_mapper
from osmcloud_common.http import create_app
from osmcloud_common.operators import token_digest

TOKEN = "operator-token-for-this-test-only-0123456789"


class Missing(DomainError):
    code = "unknown_account"


class FakeAudit:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    async def record(self, action: str, **fields: Any) -> None:
        self.entries.append({"action": action, **fields})


async def test_a_domain_error_is_answered_by_the_apps_mapping_and_audited_with_its_code() -> None:
    app = create_app("demo")
    map_domain_errors(app, status_mapper({Missing: 404}))
    audit = FakeAudit()
    runtime = SimpleNamespace(settings=SimpleNamespace(operator_token_sha256=token_digest(TOKEN), service_name="demo"),
                              db={"dead_letters": None}, audit=audit)
    admin = AdminApi(runtime, app)  # type: ignore[arg-type]

    async def account(request: web.Request, _operator: str) -> web.Response:
        raise Missing(f"no account '{request.match_info['user_id']}'")
    admin.route("GET", "/accounts/{user_id}", account, action="account-viewed")
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        answer = await client.get("/admin/api/demo/accounts/u9", headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status == 404
        assert (await answer.json())["error"] == {"code": "unknown_account", "message": "no account 'u9'"}
    finally:
        await client.close()
    assert [(e["action"], e["user_id"], e["outcome"]) for e in audit.entries] == [
        ("account-viewed", "u9", "unknown_account")]
