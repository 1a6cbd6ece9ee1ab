"""osmcloud-admin on a fake server (httpx.MockTransport): the token comes from the environment
or a file and never from an argument, answers are composed from the services, refusals exit
with the API's message."""

import json

import httpx
import pytest
from typer.testing import CliRunner

from osmcloud_cli import admin

RUNNER = CliRunner()
USER = "u1"


def fake_server(seen: list[httpx.Request]):
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("Authorization") != "Bearer op-token":
            return httpx.Response(403, json={"error": {"code": "not_an_operator", "message": "no"}})
        path = request.url.path
        if path == "/admin/api/auth/accounts":
            return httpx.Response(200, json={"user_id": USER, "email": request.url.params["email"]})
        if path == f"/admin/api/auth/accounts/{USER}":
            return httpx.Response(200, json={"user_id": USER, "devices": []})
        if path == f"/admin/api/billing/accounts/{USER}/plan":
            return httpx.Response(200, json={"plan": json.loads(request.content)["plan"]})
        if path.startswith("/admin/api/files/accounts/") and path.endswith("/export"):
            return httpx.Response(200, content=b"PK-zip-bytes")
        return httpx.Response(404, json={"error": {"code": "unknown_account", "message": "none"}})
    return handle


@pytest.fixture
def seen(monkeypatch):
    requests: list[httpx.Request] = []
    real = httpx.Client

    def client(**kw):
        return real(transport=httpx.MockTransport(fake_server(requests)), **kw)
    monkeypatch.setattr(admin.httpx, "Client", client)
    monkeypatch.setenv("OSMCLOUD_SERVER", "http://cloud.test")
    return requests


def test_account_by_email_composes_the_services_views(seen, monkeypatch):
    monkeypatch.setenv("OSMCLOUD_ADMIN_TOKEN", "op-token")
    result = RUNNER.invoke(admin.app, ["account", "a@example.org"])
    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)
    assert view["auth"]["user_id"] == USER and view["billing"] is None and view["files"] is None


def test_plan_needs_exactly_one_choice_and_sends_it(seen, monkeypatch):
    monkeypatch.setenv("OSMCLOUD_ADMIN_TOKEN", "op-token")
    assert RUNNER.invoke(admin.app, ["plan", USER, "--pro", "--start"]).exit_code == 2
    result = RUNNER.invoke(admin.app, ["plan", USER, "--revoke"])
    assert result.exit_code == 0 and json.loads(result.stdout)["plan"] == "none"


def test_a_refusal_exits_with_the_api_message(seen, monkeypatch):
    monkeypatch.setenv("OSMCLOUD_ADMIN_TOKEN", "wrong")
    result = RUNNER.invoke(admin.app, ["account", USER])
    assert result.exit_code == admin.EXIT_REFUSED and "not_an_operator" in result.stderr


def test_no_token_no_call(seen, monkeypatch):
    monkeypatch.delenv("OSMCLOUD_ADMIN_TOKEN", raising=False)
    result = RUNNER.invoke(admin.app, ["health"])
    assert result.exit_code == 2 and "OSMCLOUD_ADMIN_TOKEN" in result.stderr and not seen


def test_export_streams_into_the_file(seen, monkeypatch, tmp_path):
    token = tmp_path / "token"
    token.write_text("op-token\n")
    monkeypatch.delenv("OSMCLOUD_ADMIN_TOKEN", raising=False)
    target = tmp_path / "out.zip"
    result = RUNNER.invoke(admin.app, ["export", USER, "-o", str(target), "--token-file", str(token)])
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == b"PK-zip-bytes" and not (tmp_path / "out.zip.part").exists()
    assert seen[-1].url.params["versions"] == "newest"


def test_delete_asks_for_yes(seen, monkeypatch):
    monkeypatch.setenv("OSMCLOUD_ADMIN_TOKEN", "op-token")
    assert RUNNER.invoke(admin.app, ["delete", USER]).exit_code == 2 and not seen
