"""files' admin routes refuse with files' domain errors; the app's one mapping (native_errors.
api_error through map_domain_errors) answers them as docs/admin-openapi.yaml says, and the
admin guard audits the refusal with its code (not "internal")."""

from types import SimpleNamespace
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from osmcloud_common.admin import AdminApi
from osmcloud_common.domain_errors import map_domain_errors
from osmcloud_common.http import create_app
from osmcloud_common.operators import token_digest
from osmcloud_files.admin_routes import FilesAdminRoutes
from osmcloud_files.native_errors import api_error

TOKEN = "operator-token-for-this-test-only-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class FakeAudit:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    async def record(self, action: str, **fields: Any) -> None:
        self.entries.append({"action": action, **fields})


class NoAccounts:
    async def find_one(self, *_: Any) -> None:
        return None


async def _answers(*calls: tuple[str, dict[str, str]]) -> tuple[list[tuple[int, dict[str, Any]]], FakeAudit]:
    app = create_app("files")
    map_domain_errors(app, api_error)
    audit = FakeAudit()
    runtime = SimpleNamespace(settings=SimpleNamespace(operator_token_sha256=token_digest(TOKEN), service_name="files"),
                              db={"dead_letters": None}, audit=audit)
    admin = AdminApi(runtime, app)  # type: ignore[arg-type]
    store = SimpleNamespace(accounts=NoAccounts())
    FilesAdminRoutes(store, None, None).register(admin)  # type: ignore[arg-type]
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        answers = []
        for path, params in calls:
            answer = await client.get(path, params=params, headers=AUTH)
            answers.append((answer.status, (await answer.json())["error"]))
    finally:
        await client.close()
    return answers, audit


async def test_an_unknown_account_is_404_unknown_account() -> None:
    answers, audit = await _answers(("/admin/api/files/accounts/u9", {}),
                                    ("/admin/api/files/accounts/u9/export", {}))
    refusal = {"code": "unknown_account", "message": "files knows no account 'u9'"}
    assert answers == [(404, refusal), (404, refusal)]
    assert [(e["action"], e["user_id"], e["outcome"]) for e in audit.entries] == [
        ("usage-viewed", "u9", "unknown_account"), ("account-exported", "u9", "unknown_account")]


async def test_an_export_asking_for_other_versions_is_400_bad_request() -> None:
    answers, audit = await _answers(("/admin/api/files/accounts/u9/export", {"versions": "some"}))
    assert answers == [(400, {"code": "bad_request", "message": "'versions' is newest (default) or all"})]
    assert audit.entries[0]["outcome"] == "bad_request"
