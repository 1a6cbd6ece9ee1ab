"""`osmcloud-admin`: the operators' command over the admin API (docs/operators.md,
docs/admin-openapi.yaml). It talks HTTP to the gateway only, like `osmcloud`.

The operator token comes from OSMCLOUD_ADMIN_TOKEN or a file (--token-file), never from the
command line (where `ps` and shell histories would show it); the server from --server or
OSMCLOUD_SERVER. Answers are printed as JSON, for people and scripts alike."""

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer

SERVICES = ("auth", "files", "trash", "billing")
EXIT_REFUSED = 3
EXIT_UNREACHABLE = 4

app = typer.Typer(help="Operate an osmcloud server: accounts, plans, quotas, exports, dead letters, health.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
letters_app = typer.Typer(help="Events a service's consumer set aside: list, replay, discard.",
                          invoke_without_command=True)
app.add_typer(letters_app, name="dead-letters")

SERVER = typer.Option(None, "--server", envvar="OSMCLOUD_SERVER", help="the gateway's URL, e.g. https://cloud.example.org")
TOKEN_FILE = typer.Option(None, "--token-file", help="a file holding the operator token (else OSMCLOUD_ADMIN_TOKEN)")


class Admin:
    def __init__(self, server: str | None, token_file: Path | None) -> None:
        if not server:
            fail("name the server: --server URL or OSMCLOUD_SERVER", 2)
        token = token_file.read_text().strip() if token_file else os.environ.get("OSMCLOUD_ADMIN_TOKEN", "").strip()
        if not token:
            fail("no operator token: set OSMCLOUD_ADMIN_TOKEN or pass --token-file", 2)
        self.client = httpx.Client(base_url=server.rstrip("/"), headers={"Authorization": f"Bearer {token}"},
                                   timeout=httpx.Timeout(60, read=600))

    def call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            reply = self.client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            fail(f"the server did not answer: {exc}", EXIT_UNREACHABLE)
        body = _json(reply)
        if reply.status_code >= 400:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            fail(f"{reply.status_code} {error.get('code', '')}: {error.get('message', reply.text[:300])}", EXIT_REFUSED)
        return body

    def optional(self, method: str, path: str) -> Any:
        """An answer, or None where the service knows no such account (404)."""
        reply = self.client.request(method, path)
        return None if reply.status_code == 404 else self.call(method, path)


def _json(reply: httpx.Response) -> Any:
    try:
        return reply.json()
    except ValueError:
        return {}


def fail(message: str, code: int) -> NoReturn:
    print(f"osmcloud-admin: {message}", file=sys.stderr)
    raise typer.Exit(code)


def show(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False, default=str))


def user_id_of(admin: Admin, who: str) -> str:
    """An account's id from its id or its e-mail address."""
    if "@" in who:
        user_id: str = admin.call("GET", "/admin/api/auth/accounts", params={"email": who})["user_id"]
        return user_id
    return who


@app.command()
def account(who: str = typer.Argument(..., help="the account's e-mail address or user id"),
            server: str = SERVER, token_file: Path = TOKEN_FILE) -> None:
    """An account: e-mail, devices and when each was last seen, plan, usage, store orders."""
    admin = Admin(server, token_file)
    user_id = user_id_of(admin, who)
    show({"auth": admin.call("GET", f"/admin/api/auth/accounts/{user_id}"),
          "billing": admin.optional("GET", f"/admin/api/billing/accounts/{user_id}"),
          "files": admin.optional("GET", f"/admin/api/files/accounts/{user_id}")})


@app.command()
def plan(who: str = typer.Argument(..., help="e-mail or user id"),
         pro: bool = typer.Option(False, "--pro", help="grant Pro"),
         start: bool = typer.Option(False, "--start", help="grant Start"),
         revoke: bool = typer.Option(False, "--revoke", help="end what an operator granted (the grace year starts)"),
         until: Annotated[datetime | None, typer.Option(
             "--until", help="Pro's end (ISO 8601, UTC if no offset); none: no end")] = None,
         server: str = SERVER, token_file: Path = TOKEN_FILE) -> None:
    """Grant Pro (with or without an end date) or Start, or revoke."""
    if [pro, start, revoke].count(True) != 1:
        fail("choose one of --pro, --start, --revoke", 2)
    admin = Admin(server, token_file)
    body: dict[str, Any] = {"plan": "pro" if pro else "start" if start else "none"}
    if until is not None:
        local_zone = datetime.now().astimezone().tzinfo
        body["until"] = (until if until.tzinfo else until.replace(tzinfo=local_zone)).isoformat()
    show(admin.call("PUT", f"/admin/api/billing/accounts/{user_id_of(admin, who)}/plan", json=body))


def _limit(value: str | None, what: str) -> int | None:
    if value is None or value.lower() == "none":
        return None
    try:
        number = int(value)
    except ValueError:
        fail(f"{what} is a whole number or 'none'", 2)
    return number


@app.command()
def quota(who: str = typer.Argument(..., help="e-mail or user id"),
          bytes_: str = typer.Option("none", "--bytes", help="the account's quota in bytes, or none (the plan's)"),
          files: str = typer.Option("none", "--files", help="the most files, or none (the plan's)"),
          server: str = SERVER, token_file: Path = TOKEN_FILE) -> None:
    """Set (or clear) the account's quota and file-count overrides."""
    admin = Admin(server, token_file)
    show(admin.call("PUT", f"/admin/api/billing/accounts/{user_id_of(admin, who)}/overrides",
                    json={"quota_bytes": _limit(bytes_, "--bytes"), "max_files": _limit(files, "--files")}))


@app.command()
def logout(who: str = typer.Argument(..., help="e-mail or user id"),
           device: str = typer.Option(None, "--device", help="one device's id; none: every device"),
           server: str = SERVER, token_file: Path = TOKEN_FILE) -> None:
    """Log out one device of the account, or all of them."""
    admin = Admin(server, token_file)
    show(admin.call("POST", f"/admin/api/auth/accounts/{user_id_of(admin, who)}/logout", json={"device_id": device}))


@app.command()
def delete(who: str = typer.Argument(..., help="e-mail or user id"),
           yes: bool = typer.Option(False, "--yes", help="confirm: every file, version and trash item goes"),
           server: str = SERVER, token_file: Path = TOKEN_FILE) -> None:
    """Delete an account and all its cloud data (irreversible)."""
    if not yes:
        fail("deleting an account cannot be undone; add --yes", 2)
    admin = Admin(server, token_file)
    show(admin.call("DELETE", f"/admin/api/auth/accounts/{user_id_of(admin, who)}"))


@app.command()
def export(who: Annotated[str, typer.Argument(help="e-mail or user id")],
           output: Annotated[Path, typer.Option("-o", "--output", help="the zip file to write")],
           all_versions: bool = typer.Option(False, "--all-versions", help="every stored version, not only the newest"),
           server: str = SERVER, token_file: Path = TOKEN_FILE) -> None:
    """Export an account's data as a zip (streamed to the file) with a manifest."""
    admin = Admin(server, token_file)
    user_id = user_id_of(admin, who)
    params = {"versions": "all" if all_versions else "newest"}
    partial = output.with_name(output.name + ".part")
    written = 0
    try:
        with admin.client.stream("GET", f"/admin/api/files/accounts/{user_id}/export", params=params) as reply:
            if reply.status_code >= 400:
                reply.read()
                error = _json(reply).get("error", {})
                fail(f"{reply.status_code} {error.get('code', '')}: {error.get('message', '')}", EXIT_REFUSED)
            with partial.open("wb") as sink:
                for chunk in reply.iter_bytes(1 << 20):
                    sink.write(chunk)
                    written += len(chunk)
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        fail(f"the export was cut off: {exc}", EXIT_UNREACHABLE)
    partial.replace(output)
    show({"user_id": user_id, "file": str(output), "bytes": written})


@letters_app.callback()
def dead_letters(ctx: typer.Context, service: str = typer.Option(None, "--service", help="one service; none: all"),
                 server: str = SERVER, token_file: Path = TOKEN_FILE) -> None:
    """List dead letters per service, with the failing event and the error."""
    if ctx.invoked_subcommand is not None:
        return
    admin = Admin(server, token_file)
    show({s: admin.call("GET", f"/admin/api/{s}/dead-letters")["dead_letters"] for s in _services(service)})


@letters_app.command("replay")
def replay(service: str = typer.Argument(...), letter_id: str = typer.Argument(...),
           server: str = SERVER, token_file: Path = TOKEN_FILE) -> None:
    """Apply a dead letter's event again (once); it is removed when it succeeds."""
    show(Admin(server, token_file).call("POST", f"/admin/api/{_service(service)}/dead-letters/{letter_id}/replay"))


@letters_app.command("discard")
def discard(service: str = typer.Argument(...), letter_id: str = typer.Argument(...),
            server: str = SERVER, token_file: Path = TOKEN_FILE) -> None:
    """Drop a dead letter without applying it."""
    show(Admin(server, token_file).call("DELETE", f"/admin/api/{_service(service)}/dead-letters/{letter_id}"))


@app.command()
def reconcile(server: str = SERVER, token_file: Path = TOKEN_FILE) -> None:
    """Run files' reconciler now."""
    show(Admin(server, token_file).call("POST", "/admin/api/files/reconcile"))


@app.command()
def purge(server: str = SERVER, token_file: Path = TOKEN_FILE) -> None:
    """Run the trash purge of expired items now."""
    show(Admin(server, token_file).call("POST", "/admin/api/trash/purge"))


@app.command()
def health(server: str = SERVER, token_file: Path = TOKEN_FILE) -> None:
    """Every service's readiness, outbox backlog, consumer lag and dead letters."""
    admin = Admin(server, token_file)
    report = {s: admin.call("GET", f"/admin/api/{s}/health") for s in SERVICES}
    show(report)
    if not all(r.get("ready") for r in report.values()):
        raise typer.Exit(1)


@app.command()
def audit(user: str = typer.Option(None, "--user", help="e-mail or user id"),
          action: str = typer.Option(None, "--action", help="e.g. login, login-refused, plan-changed"),
          service: str = typer.Option(None, "--service", help="one service; none: all, merged"),
          since: Annotated[datetime | None, typer.Option("--since", help="ISO 8601")] = None,
          limit: int = typer.Option(100, "--limit", min=1, max=500),
          server: str = SERVER, token_file: Path = TOKEN_FILE) -> None:
    """The audit log, newest first, merged across services."""
    admin = Admin(server, token_file)
    params: dict[str, str] = {"limit": str(limit)}
    if user:
        params["user_id"] = user_id_of(admin, user)
    if action:
        params["action"] = action
    if since:
        params["since"] = (since if since.tzinfo else since.astimezone()).isoformat()
    entries = [e for s in _services(service)
               for e in admin.call("GET", f"/admin/api/{s}/audit", params=params)["entries"]]
    show(sorted(entries, key=lambda e: e["at"], reverse=True)[:limit])


def _service(name: str) -> str:
    if name not in SERVICES:
        fail(f"unknown service '{name}'; one of {', '.join(SERVICES)}", 2)
    return name


def _services(name: str | None) -> tuple[str, ...]:
    return (_service(name),) if name else SERVICES


def main() -> None:
    app()
