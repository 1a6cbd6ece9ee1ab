"""`osmcloud`: the command line (typer). Each command is a thin layer over the engine, the
API client and the output helpers; docs/cli.md is its manual."""

import asyncio
import contextlib
import platform
import socket
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from . import config, output
from .api import Api
from .engine import Engine, QuietReporter
from .errors import (
    EXIT_CONFLICTS,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    BadInput,
    CliError,
    NotLoggedIn,
    Offline,
    Refused,
)
from .layout import TYPE_FOLDERS, Key, LayoutError, key_of, local_path, resolve_type
from .output import emit_json, err, out
from .state import FolderOwnedElsewhere, State
from .watch import watch_loop

T = TypeVar("T")

app = typer.Typer(help="Sync a local OsmAnd-style data folder with an osmcloud server.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
trash_app = typer.Typer(help="The cloud trash: deleted files for 30 days, grouped by month.",
                        invoke_without_command=True)
devices_app = typer.Typer(help="The account's logged-in devices.", invoke_without_command=True)
app.add_typer(trash_app, name="trash")
app.add_typer(devices_app, name="devices")

JSON = typer.Option(False, "--json", help="print JSON for scripts instead of tables")


@dataclass
class Settings:
    config_dir: Path
    folder: Path | None


@app.callback()
def main_options(ctx: typer.Context,
                 config_dir: Annotated[Path | None, typer.Option(
                     "--config-dir", envvar="OSMCLOUD_CONFIG_DIR",
                     help="where the login is kept (default ~/.config/osmcloud)")] = None,
                 folder: Annotated[Path | None, typer.Option(
                     "--folder", envvar="OSMCLOUD_FOLDER",
                     help="the synced folder (default: the one chosen at login)")] = None) -> None:
    ctx.obj = Settings(config_dir or config.default_config_dir(), folder)


def settings(ctx: typer.Context) -> Settings:
    found: Settings = ctx.find_root().obj  # set by main_options; click types `obj` as Any
    return found


def run(work: Coroutine[Any, Any, T]) -> T:
    """Runs a command's async work; a CliError becomes its message and exit code."""
    try:
        return asyncio.run(work)
    except CliError as exc:
        err.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(exc.exit_code) from None  # the message is all a person needs; the exit is no error
    except (LayoutError, FolderOwnedElsewhere) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2 if isinstance(exc, LayoutError) else 1) from None
    except KeyboardInterrupt:
        err.print("interrupted: every file finished so far is recorded; the next sync resumes")
        raise typer.Exit(EXIT_INTERRUPTED) from None


@dataclass
class Session:
    creds: config.Credentials
    api: Api
    folder: Path
    state: State
    engine: Engine

    def account(self) -> dict[str, str]:
        return {"email": self.creds.email, "server": self.creds.server, "folder": str(self.folder)}


@contextlib.asynccontextmanager
async def session(ctx: typer.Context, jobs: int = 8) -> AsyncIterator[Session]:
    s = settings(ctx)
    creds = config.load(s.config_dir)
    folder = (s.folder or Path(creds.folder)).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    state = State(folder)
    api = Api(creds.server, creds.token, connections=jobs)
    try:
        state.claim(creds.server, creds.user_id)
        state.put("email", creds.email)
        yield Session(creds, api, folder, state, Engine(api, state, folder, jobs=jobs))
    finally:
        await api.close()
        state.close()


def key_arg(sess: Session, path: str) -> Key:
    """PATH as given: relative to the folder, or absolute/relative to the current directory inside it."""
    candidate = Path(path).expanduser()
    absolute = candidate.resolve() if candidate.is_absolute() or (Path.cwd() / candidate).exists() else None
    if absolute is not None and sess.folder in absolute.parents:
        return key_of(absolute.relative_to(sess.folder).as_posix())
    return key_of(path)


# ==================================================================== login / logout
@app.command()
def login(ctx: typer.Context,
          url: str = typer.Argument(..., help="the server's gateway URL, e.g. https://cloud.example.org"),
          email: str = typer.Argument(...),
          folder: Annotated[Path | None, typer.Option(
              "--folder", help="the folder to sync (default: the current directory)")] = None,
          device_name: str = typer.Option(None, "--device-name",
                                          help="how this device is listed (default: osmcloud on HOST)"),
          code: str = typer.Option(None, "--code", help="the mailed code (asked for when not given)")) -> None:
    """Log this computer in with the code mailed to EMAIL; the device token is stored user-only."""
    s = settings(ctx)
    target = (folder or s.folder or Path.cwd()).expanduser().resolve()
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise BadInputExit(f"'{url}' is not a URL; give the server's address, e.g. https://cloud.example.org")

    async def send() -> dict[str, Any]:
        async with Api(url) as api:
            return await api.send_code(email)

    if code is None:
        sent = run(send())
        err.print(f"A code was mailed to {email} (valid {sent.get('expires_in_seconds', 3600) // 60} minutes).")
    device = {"name": device_name or f"osmcloud on {socket.gethostname()}"[:200], "brand": platform.system()[:100],
              "model": "osmcloud-cli", "platform": "cli"}

    async def confirm(given: str) -> dict[str, Any]:
        async with Api(url) as api:
            return await api.create_session(email, given.strip(), device)

    for attempt in range(3):
        given = code if code is not None else typer.prompt("Code from the e-mail", err=True)
        try:
            created = asyncio.run(confirm(given))
            break
        except BadInput as exc:
            err.print(f"[red]{exc.message}[/]")
            if code is not None or attempt == 2 or exc.code not in ("code_wrong",):
                raise typer.Exit(exc.exit_code) from None
        except CliError as exc:
            err.print(f"[red]error:[/] {exc.message}")
            raise typer.Exit(exc.exit_code) from None
    creds = config.Credentials(server=url, email=email, token=created["token"], user_id=created["user_id"],
                               device_id=created["device_id"], folder=str(target))
    target.mkdir(parents=True, exist_ok=True)
    state = State(target)
    try:
        state.claim(url, created["user_id"])
        state.put("email", email)
    except FolderOwnedElsewhere as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    finally:
        state.close()
    path = config.save(s.config_dir, creds)
    err.print(f"Logged in as {email}{' (new account)' if created.get('new_account') else ''}; "
              f"folder {target}; credentials in {path} (readable by you only).")


class BadInputExit(typer.Exit):
    def __init__(self, message: str) -> None:
        err.print(f"[red]error:[/] {message}")
        super().__init__(2)


@app.command()
def logout(ctx: typer.Context) -> None:
    """Log this device out on the server and forget its token."""
    s = settings(ctx)

    async def work() -> None:
        creds = config.load(s.config_dir)
        async with Api(creds.server, creds.token) as api:
            with contextlib.suppress(NotLoggedIn):
                await api.logout()
    run(work())
    config.remove(s.config_dir)
    err.print("Logged out.")


# ==================================================================== status / sync
@app.command()
def status(ctx: typer.Context, verbose: bool = typer.Option(False, "-v", "--verbose", help="list the files"),
           json_out: bool = JSON) -> None:
    """Last sync, local changes, cloud changes and conflicts (-v: each file, sorted by type then name)."""
    async def work() -> dict[str, Any]:
        async with session(ctx) as sess:
            analysis = await sess.engine.analyze()
            view = output.status_view(sess.account(), sess.state.last_sync, analysis, verbose)
            if json_out:
                emit_json(view)
            else:
                output.print_status(view, analysis, verbose)
            return view
    run(work())


@app.command()
def sync(ctx: typer.Context,
         watch: bool = typer.Option(False, "--watch",
                                    help="keep running: sync when files change and at least every --interval"),
         interval: float = typer.Option(3600, "--interval", min=1,
                                        help="seconds between syncs in --watch mode when nothing changes"),
         jobs: int = typer.Option(8, "--jobs", "-j", min=1, max=32, help="files transferred at once"),
         json_out: bool = JSON,
         quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars")) -> None:
    """Upload every local change and download every cloud change; conflicts are left untouched and listed."""
    async def once(sess: Session) -> int:
        reporter = QuietReporter() if (json_out or quiet) else output.BarReporter()
        analysis, summary = await sess.engine.sync(reporter)
        if json_out:
            emit_json({**sess.account(), **summary.view(),
                       "error": None if summary.fatal is None else {"code": summary.fatal.code,
                                                                    "message": summary.fatal.message}})
        else:
            output.print_summary(summary)
        if summary.fatal is not None:
            raise summary.fatal
        if any(isinstance(e, Refused) for _, e in summary.failed):
            return EXIT_REFUSED
        if summary.failed:
            return EXIT_FAILED
        return EXIT_CONFLICTS if summary.conflicts else EXIT_OK

    async def work() -> int:
        async with session(ctx, jobs) as sess:
            if not watch:
                return await once(sess)

            async def each() -> float | None:
                try:
                    await once(sess)
                except Offline as exc:
                    err.print(f"[yellow]{exc.message}[/] (trying again in a minute)")
                    return min(60.0, interval)
                return None
            if not json_out:
                err.print(f"Watching {sess.folder}: syncing on every change and at least every {interval:g} s "
                          f"(Ctrl-C stops).")
            await watch_loop(each, sess.folder, interval)
            return EXIT_OK
    code = run(work())
    raise typer.Exit(code)


@app.command()
def resolve(ctx: typer.Context, path: str = typer.Argument(..., help="the file, e.g. tracks/ride.gpx"),
            upload_local: bool = typer.Option(False, "--upload-local", help="the local file replaces the cloud one"),
            download_cloud: bool = typer.Option(False, "--download-cloud",
                                                help="the cloud file replaces the local one (a copy of it is kept)"),
            json_out: bool = JSON) -> None:
    """Resolve one conflict: keep the local version or the cloud version."""
    if upload_local == download_cloud:
        raise BadInputExit("choose one: --upload-local or --download-cloud")

    async def work() -> None:
        async with session(ctx) as sess:
            result = await sess.engine.resolve(key_arg(sess, path), "local" if upload_local else "cloud")
            if json_out:
                emit_json(result)
            else:
                kept = result.get("local_copy")
                out.print(f"{result['path']}: {result['result']}"
                          + (f"; the local version was kept as {kept}" if kept else "")
                          + ("; the cloud version stays in the file's history"
                             if result.get("replaced_cloud_version") else ""))
    run(work())


@app.command()
def diff(ctx: typer.Context, path: str = typer.Argument(...), json_out: bool = JSON) -> None:
    """Both sides of one file: local modified time and size, cloud upload time, size and device."""
    async def work() -> None:
        async with session(ctx) as sess:
            key = key_arg(sess, path)
            analysis = await sess.engine.analyze({key})
            item = analysis.items[0] if analysis.items else None
            synced = sess.state.synced_one(key)
            cloud = sess.state.cloud_one(key)
            local = local_path(sess.folder, key)
            stat = local.stat() if local.is_file() else None
            lv: dict[str, Any] | None = None if stat is None else {
                "size": stat.st_size, "modified_ms": stat.st_mtime_ns // 1_000_000,
                "checksum": item.local_checksum if item else (synced.checksum if synced else None)}
            cv: dict[str, Any] | None = None if cloud is None or cloud.version_id is None else {
                "version_id": cloud.version_id, "deleted": cloud.deleted, "size": cloud.size,
                "updatetime": cloud.updatetime, "device_id": cloud.device_id, "checksum": cloud.checksum}
            sv: dict[str, Any] | None = None if synced is None else {
                "version_id": synced.version_id, "at": synced.synced_at, "checksum": synced.checksum}
            if cv is not None and cv["device_id"]:
                names = {d["id"]: d.get("name") or d["id"] for d in (await sess.api.devices())["devices"]}
                cv["device"] = names.get(cv["device_id"], "a device logged out since")
            view = {
                "path": key.path, "type": key.type, "name": key.name,
                "state": "in sync" if item is None else (str(item.decision.conflict) if item.decision.conflict
                                                         else output.CHANGE_WORDS[item.decision.action]),
                "local": lv, "cloud": cv, "last_synced": sv,
            }
            if json_out:
                emit_json(view)
                return
            table = output.new_table(f"{key.path}: {view['state']}")
            for column in ("", "here", "cloud", "last synced"):
                table.add_column(column, overflow="fold")
            table.add_row("time", output.when_ms(lv["modified_ms"]) + " (modified)" if lv else "missing",
                          (output.when_ms(cv["updatetime"]) + (" (deleted)" if cv["deleted"] else " (uploaded)"))
                          if cv else "none", output.when(sv["at"]) if sv else "never")
            table.add_row("size", output.size(lv["size"]) if lv else "-",
                          output.size(cv["size"]) if cv and not cv["deleted"] else "-", "")
            table.add_row("version", "", cv["version_id"] if cv else "-", sv["version_id"] if sv else "-")
            table.add_row("device", "this one", (cv.get("device") or "-") if cv else "-", "")
            out.print(table)
    run(work())


# ==================================================================== backup switches, storage
@app.command(help="Switch backup of a type on or off for the account (off: not synced, stored files stay). "
                  "Without arguments: list.")
def select(ctx: typer.Context,
           file_type: str = typer.Argument(None, metavar="TYPE", help="a type (GPX) or its folder (tracks)"),
           switch: str = typer.Argument(None, metavar="on|off"), json_out: bool = JSON) -> None:
    if (file_type is None) != (switch is None) or (switch is not None and switch.lower() not in ("on", "off")):
        raise BadInputExit("use: osmcloud select TYPE on|off   (or osmcloud select, to list)")

    async def work() -> None:
        async with session(ctx) as sess:
            if file_type is not None:
                wire = resolve_type(file_type)
                result = await sess.api.set_backup(wire, switch.lower() == "on")
                if json_out:
                    emit_json(result)
                else:
                    out.print(f"Backup of {wire} ({output_folder(wire)}/) is {'on' if result['enabled'] else 'off'}.")
                return
            types = await sess.api.backup_types()
            if json_out:
                emit_json({"types": [{**t, "folder": output_folder(t["type"])} for t in types]})
                return
            table = output.new_table("Backup per type")
            for column in ("type", "folder", "category", "backup"):
                table.add_column(column)
            for t in types:
                table.add_row(t["type"], output_folder(t["type"]) + "/", t["category"], "on" if t["enabled"] else "off")
            out.print(table)
    run(work())


def output_folder(file_type: str) -> str:
    return TYPE_FOLDERS.get(file_type, "?")


@app.command()
def storage(ctx: typer.Context, json_out: bool = JSON) -> None:
    """Used storage per category and type, against the plan's quota."""
    async def work() -> None:
        async with session(ctx) as sess:
            page = await sess.api.storage()
            if json_out:
                emit_json(page)
                return
            out.print(f"Plan: {page.get('plan') or 'none'} - {output.size(page['used_bytes'])} of "
                      f"{output.size(page['quota_bytes'])} used, {page['file_count']} files")
            table = output.new_table("By category and type")
            for column in ("category", "type", "files", "used", "backup", "in plan"):
                table.add_column(column)
            for category in page["categories"]:
                table.add_row(f"[bold]{category['category']}[/]", "", str(category["file_count"]),
                              output.size(category["used_bytes"]), "", "")
                for t in page["types"]:
                    if t["category"] == category["category"] and (t["file_count"] or not t["backup_enabled"]):
                        table.add_row("", t["type"], str(t["file_count"]), output.size(t["used_bytes"]),
                                      "on" if t["backup_enabled"] else "off", "yes" if t["allowed_by_plan"] else "no")
            out.print(table)
    run(work())


# ==================================================================== devices
@devices_app.callback()
def devices(ctx: typer.Context, json_out: bool = JSON) -> None:
    """List the account's devices (osmcloud devices logout ID logs one out)."""
    if ctx.invoked_subcommand is not None:
        return

    async def work() -> None:
        async with session(ctx) as sess:
            listed = (await sess.api.devices())["devices"]
            if json_out:
                emit_json({"devices": listed})
                return
            table = output.new_table("Devices")
            for column in ("id", "name", "model", "platform", "last seen", ""):
                table.add_column(column)
            for d in listed:
                table.add_row(d["id"], d.get("name") or "-", " ".join(x for x in (d.get("brand"), d.get("model")) if x),
                              d.get("platform") or "-", (d.get("last_seen_at") or "-")[:19].replace("T", " "),
                              "this one" if d.get("this_device") else "")
            out.print(table)
    run(work())


@devices_app.command("logout")
def devices_logout(ctx: typer.Context, device_id: str = typer.Argument(..., metavar="ID"),
                   json_out: bool = JSON) -> None:
    """Log one device of the account out (its token stops working at once)."""
    async def work() -> None:
        async with session(ctx) as sess:
            result = await sess.api.logout_device(device_id)
            emit_json(result) if json_out else out.print(f"Device {device_id} is logged out.")
    run(work())


# ==================================================================== trash
def trash_items(page: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for month in page["months"] for item in month["items"]]


def find_item(sess: Session, page: dict[str, Any], ref: str) -> dict[str, Any]:
    """A trash item by its id, or by the file's path in the folder (the newest deletion of it)."""
    items = trash_items(page)
    for item in items:
        if item["id"] == ref:
            return item
    try:
        key = key_arg(sess, ref)
    except LayoutError:
        key = None
    matches = [i for i in items if key is not None and (i["type"], i["name"]) == (key.type, key.name)]
    if not matches:
        raise CliError(f"nothing in the trash is '{ref}'; osmcloud trash lists the items", code="item_not_found")
    return max(matches, key=lambda i: i["deleted_at"])


@trash_app.callback()
def trash(ctx: typer.Context, json_out: bool = JSON) -> None:
    """List the trash by month, newest first."""
    if ctx.invoked_subcommand is not None:
        return

    async def work() -> None:
        async with session(ctx) as sess:
            page = await sess.api.trash()
            if json_out:
                emit_json(page)
                return
            out.print(f"{page['total_items']} items, {output.size(page['total_bytes'])} (kept 30 days)")
            for month in page["months"]:
                table = output.new_table(month["month"])
                for column in ("id", "type", "path", "size", "deleted", "purged on"):
                    table.add_column(column)
                for item in month["items"]:
                    table.add_row(item["id"], item["type"], Key(item["type"], item["name"]).path
                                  if item["type"] in TYPE_FOLDERS else item["name"], output.size(item["size"]),
                                  item["deleted_at"][:19].replace("T", " "), item["expires_at"][:10])
                out.print(table)
    run(work())


@trash_app.command("restore")
def trash_restore(ctx: typer.Context, item: str = typer.Argument(..., help="the item's id or the file's path"),
                  json_out: bool = JSON) -> None:
    """Restore a file: it is the newest cloud version again (the next sync brings it here)."""
    async def work() -> None:
        async with session(ctx) as sess:
            found = find_item(sess, await sess.api.trash(), item)
            result = await sess.api.trash_restore(found["id"])
            emit_json(result) if json_out else out.print(
                f"Restored {found['type']}/{found['name']}; osmcloud sync brings it to this folder.")
    run(work())


@trash_app.command("download")
def trash_download(ctx: typer.Context, item: str = typer.Argument(..., help="the item's id or the file's path"),
                   replace: bool = typer.Option(False, "--replace", help="overwrite a local file of that name"),
                   keep_both: bool = typer.Option(False, "--keep-both",
                                                  help="save as 'name (1).ext' when the name is taken"),
                   json_out: bool = JSON) -> None:
    """Download a trashed file's last version into the folder (it stays in the trash)."""
    if replace and keep_both:
        raise BadInputExit("choose one of --replace and --keep-both")

    async def work() -> None:
        async with session(ctx) as sess:
            found = find_item(sess, await sess.api.trash(), item)
            key = Key(found["type"], found["name"])
            target = local_path(sess.folder, key)
            if target.exists():
                if keep_both:
                    target = free_name(target)
                elif not replace:
                    raise BadInput(f"{key.path} exists here; add --replace to overwrite it or --keep-both to save "
                                   f"the trashed version beside it")
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.parent / f".osmcloud-partial-trash-{found['id']}"
            try:
                checksum, nbytes = await sess.api.trash_download(found["id"], partial)
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
            result = {"id": found["id"], "saved_as": str(target), "size": nbytes, "checksum": checksum}
            emit_json(result) if json_out else out.print(
                f"Saved {target} ({output.size(nbytes)}); the next sync uploads it.")
    run(work())


def free_name(path: Path) -> Path:
    for n in range(1, 10_000):
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
        if not candidate.exists():
            return candidate
    raise CliError(f"no free name beside {path}")


@trash_app.command("delete")
def trash_delete(ctx: typer.Context, item: str = typer.Argument(..., help="the item's id or the file's path"),
                 json_out: bool = JSON) -> None:
    """Delete one item now, for good."""
    async def work() -> None:
        async with session(ctx) as sess:
            found = find_item(sess, await sess.api.trash(), item)
            result = await sess.api.trash_delete(found["id"])
            emit_json(result) if json_out else out.print(f"Deleted {found['type']}/{found['name']} for good.")
    run(work())


@trash_app.command("empty")
def trash_empty(ctx: typer.Context, yes: bool = typer.Option(False, "--yes", "-y", help="do not ask"),
                json_out: bool = JSON) -> None:
    """Empty the trash: every item deleted for good."""
    if not yes and not typer.confirm("Delete everything in the trash for good?"):
        raise typer.Exit(1)

    async def work() -> None:
        async with session(ctx) as sess:
            result = await sess.api.trash_empty()
            emit_json(result) if json_out else out.print(f"Emptied the trash: {result.get('purged', 0)} items deleted "
                                                         f"for good.")
    run(work())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
