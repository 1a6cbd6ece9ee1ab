"""`osmcloud`, the sync client, against the real stack: two folders on one account (two CLI
devices), and OsmAnd's app through /userdata/ as a third device. The CLI is driven as a
person would: `login` as a subprocess answering the prompt with the mailed code, every other
command in-process through typer's runner, reading `--json` output and exit codes. Each
check follows its command at once: no waiting between a sync and what it should have done.

The only waits are in the setup (files learning the account's plan from billing's event,
as tests/integration/files does)."""

import asyncio
import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from osmcloud_cli.app import app
from osmcloud_cli.errors import EXIT_CONFLICTS, EXIT_USAGE
from osmcloud_localstack.client import GatewayClient, count_mails, eventually, read_code
from osmcloud_localstack.testing import advance_clock
from tests.integration.test_osmand_files import osmand_user

RESEND_SECONDS = 30
OSMCLOUD = Path(sys.executable).parent / "osmcloud"


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def json(self):
        return json.loads(self.stdout)


@dataclass
class Client:
    """One computer running osmcloud: its config dir (login) and its synced folder."""
    config_dir: Path
    folder: Path

    async def __call__(self, *args: str, input: str | None = None) -> Run:
        def invoke() -> Run:
            result = CliRunner().invoke(app, ["--config-dir", str(self.config_dir), *args], input=input,
                                        catch_exceptions=False)
            return Run(result.exit_code, result.stdout, result.stderr)
        return await asyncio.to_thread(invoke)

    async def json(self, *args: str, expect: int = 0) -> dict:
        run = await self(*args, "--json")
        assert run.exit_code == expect, (args, run)
        return run.json

    async def sync(self, expect: int = 0) -> dict:
        return await self.json("sync", expect=expect)

    async def status(self) -> dict:
        return await self.json("status", "-v")

    def write(self, rel: str, content: bytes) -> None:
        path = self.folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)

    def read(self, rel: str) -> bytes | None:
        path = self.folder / rel
        return path.read_bytes() if path.exists() else None

    def api(self, gateway: GatewayClient) -> GatewayClient:
        token = json.loads((self.config_dir / "credentials.json").read_text())["token"]
        return gateway.with_token(token)


async def cli_login(stack, gateway: GatewayClient, email: str, home: Path) -> Client:
    """`osmcloud login URL EMAIL` as a subprocess: it mails the code and asks for it."""
    client = Client(home / "config", home / "OsmAnd")
    before = await count_mails(gateway.session, stack.smtp_sink_url, email)
    proc = await asyncio.create_subprocess_exec(
        str(OSMCLOUD), "--config-dir", str(client.config_dir), "login", stack.gateway_url, email,
        "--folder", str(client.folder), "--device-name", home.name,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    code = await read_code(gateway.session, stack.smtp_sink_url, email, after=before, timeout=30)
    out, err = await asyncio.wait_for(proc.communicate(f"{code}\n".encode()), timeout=60)
    assert proc.returncode == 0, (out, err)
    assert b"Logged in as" in err
    return client


async def two_clients(stack, gateway, email: str, tmp_path: Path) -> tuple[Client, Client]:
    a = await cli_login(stack, gateway, email, tmp_path / "laptop")
    reply = await a.api(gateway).call("POST", "/api/billing/start")  # the free plan, as the web app offers it
    assert reply.status == 201, reply

    async def plan_known():  # setup: files learns the plan from billing's event
        return (await a.api(gateway).call("GET", "/api/files/usage")).body.get("plan") == "start"
    await eventually(plan_known, what="files learning the Start plan")
    await advance_clock(stack, RESEND_SECONDS + 1)  # auth mails one code per e-mail every 30 s
    b = await cli_login(stack, gateway, email, tmp_path / "desktop")
    return a, b


def paths(items: list[dict]) -> list[str]:
    return [i["path"] for i in items]


# ---------------------------------------------------------------------------------------------
async def test_login_stores_credentials_for_the_user_only_and_lists_devices(stack, gateway, unique_email, tmp_path):
    a, b = await two_clients(stack, gateway, unique_email, tmp_path)
    creds = a.config_dir / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600 and stat.S_IMODE(a.config_dir.stat().st_mode) == 0o700
    devices = (await b.json("devices"))["devices"]
    assert sorted(d["name"] for d in devices) == ["desktop", "laptop"]
    assert [d["name"] for d in devices if d["this_device"]] == ["desktop"]

    # a readable credentials file is refused, with what to do
    creds.chmod(0o644)
    refused = await a("status")
    assert refused.exit_code == 1 and "chmod 600" in refused.stderr
    creds.chmod(0o600)

    # logging a device out from the other: its next command says to log in again (exit 3)
    laptop = next(d for d in devices if d["name"] == "laptop")
    assert (await b("devices", "logout", laptop["id"])).exit_code == 0
    gone = await a("status")
    assert gone.exit_code == 3 and "osmcloud login" in gone.stderr


async def test_create_edit_conflict_and_resolve_both_ways(stack, gateway, unique_email, tmp_path):
    a, b = await two_clients(stack, gateway, unique_email, tmp_path)

    # created on A, synced: appears on B
    a.write("favorites/home.gpx", b"<gpx>home v1</gpx>")
    a.write("osm_notes/2024/note.osc", b"<osmChange/>")
    first = await a.status()
    assert (first["local_changes"], first["cloud_changes"], first["conflicts"]) == (2, 0, 0)
    assert paths(first["items"]["local_changes"]) == ["favorites/home.gpx", "osm_notes/2024/note.osc"]
    done = await a.sync()
    assert (done["uploaded"], done["failed"], done["conflicts"]) == (2, [], [])
    seen = await b.status()
    assert (seen["local_changes"], seen["cloud_changes"], seen["conflicts"]) == (0, 2, 0)
    assert [i["cloud"]["size"] for i in seen["items"]["cloud_changes"]] == [18, 12]
    assert (await b.sync())["downloaded"] == 2
    assert b.read("favorites/home.gpx") == b"<gpx>home v1</gpx>"
    assert b.read("osm_notes/2024/note.osc") == b"<osmChange/>"
    for client in (a, b):
        clean = await client.status()
        assert (clean["local_changes"], clean["cloud_changes"], clean["conflicts"]) == (0, 0, 0)
        assert clean["last_sync"] is not None

    # edited on both: one conflict; the sync leaves it untouched and lists it (exit 6)
    a.write("favorites/home.gpx", b"<gpx>home from A</gpx>")
    b.write("favorites/home.gpx", b"<gpx>home from B, longer</gpx>")
    assert (await a.sync())["uploaded"] == 1
    pending = await b.status()
    assert pending["conflicts"] == 1 and pending["local_changes"] == pending["cloud_changes"] == 0
    conflict = pending["items"]["conflicts"][0]
    assert conflict["conflict"] == "edited here and in the cloud" and conflict["path"] == "favorites/home.gpx"
    left = await b.sync(expect=EXIT_CONFLICTS)
    assert paths(left["conflicts"]) == ["favorites/home.gpx"] and left["uploaded"] == left["downloaded"] == 0
    assert b.read("favorites/home.gpx") == b"<gpx>home from B, longer</gpx>"  # untouched
    both = await b.json("diff", "favorites/home.gpx")
    assert both["state"] == "edited here and in the cloud"
    assert both["local"]["size"] == 30 and both["cloud"]["size"] == 22 and both["cloud"]["updatetime"]
    assert both["cloud"]["version_id"] != both["last_synced"]["version_id"]

    # resolved by uploading B's version: the cloud keeps A's version in the file's history
    resolved = await b.json("resolve", "favorites/home.gpx", "--upload-local")
    assert resolved["result"] == "uploaded" and resolved["replaced_cloud_version"] == both["cloud"]["version_id"]
    history = await b.api(gateway).call("GET", "/api/files/history/FAVOURITES/home.gpx")
    assert [v["size"] for v in history.body["versions"]] == [30, 22, 18]
    assert (await a.sync())["downloaded"] == 1
    assert a.read("favorites/home.gpx") == b"<gpx>home from B, longer</gpx>"

    # again, resolved the other way: the cloud version replaces B's, whose content is kept aside
    a.write("favorites/home.gpx", b"<gpx>A wins</gpx>")
    b.write("favorites/home.gpx", b"<gpx>B loses</gpx>")
    await a.sync()
    await b.sync(expect=EXIT_CONFLICTS)
    kept = await b.json("resolve", str(b.folder / "favorites" / "home.gpx"), "--download-cloud")
    assert kept["result"] == "downloaded"
    assert b.read("favorites/home.gpx") == b"<gpx>A wins</gpx>"
    assert Path(kept["local_copy"]).read_bytes() == b"<gpx>B loses</gpx>"
    for client in (a, b):
        clean = await client.status()
        assert (clean["local_changes"], clean["cloud_changes"], clean["conflicts"]) == (0, 0, 0)

    # resolving what is no conflict says so
    refused = await b("resolve", "favorites/home.gpx", "--upload-local")
    assert refused.exit_code == 1 and "nothing to resolve" in refused.stderr


async def test_deletions_propagate_restore_from_trash_and_empty_trash_brings_nothing_back(
        stack, gateway, unique_email, tmp_path):
    a, b = await two_clients(stack, gateway, unique_email, tmp_path)
    for name in ("n1", "n2", "n3"):
        a.write(f"osm_notes/{name}.osc", f"<note {name}/>".encode())
    assert (await a.sync())["uploaded"] == 3
    assert (await b.sync())["downloaded"] == 3

    # deleted on A: removed on B after sync, and in the trash
    (a.folder / "osm_notes" / "n1.osc").unlink()
    assert paths((await a.status())["items"]["local_changes"]) == ["osm_notes/n1.osc"]
    assert (await a.sync())["deleted_in_cloud"] == 1
    assert paths((await b.status())["items"]["cloud_changes"]) == ["osm_notes/n1.osc"]
    assert (await b.sync())["deleted_here"] == 1
    assert b.read("osm_notes/n1.osc") is None
    trash = await b.json("trash")
    assert [(i["type"], i["name"]) for m in trash["months"] for i in m["items"]] == [("OSM_NOTES", "n1.osc")]

    # restored (by its path) from the trash: back on both sides after their syncs
    assert (await b.json("trash", "restore", "osm_notes/n1.osc"))["status"] == "restored"
    assert (await b.sync())["downloaded"] == 1 and (await a.sync())["downloaded"] == 1
    assert a.read("osm_notes/n1.osc") == b.read("osm_notes/n1.osc") == b"<note n1/>"
    assert (await a.json("trash"))["total_items"] == 0

    # deleted on B and the trash emptied before A syncs again: A's unchanged copy goes too,
    # it is never taken for a new file and uploaded back
    (b.folder / "osm_notes" / "n2.osc").unlink()
    (b.folder / "osm_notes" / "n3.osc").unlink()
    assert (await b.sync())["deleted_in_cloud"] == 2
    emptied = await b.json("trash", "empty", "--yes")
    assert emptied["purged"] == 2
    assert (await b.json("trash"))["total_items"] == 0
    gone = await a.sync()
    assert gone["deleted_here"] == 2 and gone["uploaded"] == 0
    assert a.read("osm_notes/n2.osc") is None and a.read("osm_notes/n3.osc") is None
    for client in (a, b):
        assert (await client.sync())["uploaded"] == 0
        clean = await client.status()
        assert (clean["local_changes"], clean["cloud_changes"], clean["conflicts"]) == (0, 0, 0)
    live = (await a.api(gateway).call("GET", "/api/files")).body["files"]
    assert [f["name"] for f in live] == ["n1.osc"]


async def test_trash_download_replace_or_keep_both_and_selecting_types(stack, gateway, unique_email, tmp_path):
    a, b = await two_clients(stack, gateway, unique_email, tmp_path)
    a.write("favorites/work.gpx", b"<gpx>work</gpx>")
    await a.sync()
    (a.folder / "favorites" / "work.gpx").unlink()
    await a.sync()

    # downloading into a free name just saves it; a taken name needs a choice
    saved = await a.json("trash", "download", "favorites/work.gpx")
    assert a.read("favorites/work.gpx") == b"<gpx>work</gpx>" and saved["size"] == 15
    a.write("favorites/work.gpx", b"<gpx>new work</gpx>")
    taken = await a("trash", "download", "favorites/work.gpx")
    assert taken.exit_code == EXIT_USAGE and "--replace" in taken.stderr and "--keep-both" in taken.stderr
    both = await a.json("trash", "download", "favorites/work.gpx", "--keep-both")
    assert Path(both["saved_as"]).name == "work (1).gpx"
    assert a.read("favorites/work (1).gpx") == b"<gpx>work</gpx>"
    assert a.read("favorites/work.gpx") == b"<gpx>new work</gpx>"
    await a.json("trash", "download", "favorites/work.gpx", "--replace")
    assert a.read("favorites/work.gpx") == b"<gpx>work</gpx>"
    synced = await a.sync()  # both are new local files: uploaded (the deleted name is live again)
    assert synced["uploaded"] == 2 and (await a.json("trash"))["total_items"] == 0

    # one item deleted for good: gone from the trash, nothing comes back on the next sync
    (a.folder / "favorites" / "work (1).gpx").unlink()
    assert (await a.sync())["deleted_in_cloud"] == 1
    assert (await a.json("trash", "delete", "favorites/work (1).gpx"))["status"] == "purged"
    assert (await a.json("trash"))["total_items"] == 0
    assert (await a.sync())["uploaded"] == 0 and a.read("favorites/work (1).gpx") is None

    # a type switched off is not synced either way, and what is stored stays
    assert (await b.json("select", "favorites", "off"))["enabled"] is False
    b.write("favorites/private.gpx", b"<gpx>not for the cloud</gpx>")
    skipped = await b.status()
    assert skipped["backup_switched_off"] == ["FAVOURITES"]
    assert skipped["local_changes"] == skipped["cloud_changes"] == 0
    assert (await b.sync())["downloaded"] == 0
    switches = {t["type"]: t for t in (await b.json("select"))["types"]}
    assert switches["FAVOURITES"]["enabled"] is False and switches["FAVOURITES"]["folder"] == "favorites"
    assert (await b.json("select", "FAVOURITES", "on"))["enabled"] is True
    back = await b.sync()
    assert back["downloaded"] == 1 and back["uploaded"] == 1
    page = await b.json("storage")
    fav = next(t for t in page["types"] if t["type"] == "FAVOURITES")
    assert fav["file_count"] == 2 and page["plan"] == "start"

    # bad input is refused with a usable message, never a traceback
    for args, words in ((("select", "maps", "on"), "unknown type"),
                        (("resolve", "top.txt", "--upload-local"), "not inside"),
                        (("resolve", "favorites/x.gpx"), "choose one")):
        refused = await b(*args)
        assert refused.exit_code == EXIT_USAGE and words in refused.stderr, (args, refused)


async def test_osmand_app_as_a_third_device_interoperates(stack, gateway, unique_email, tmp_path):
    """The app (raw /userdata/ HTTP, as it sends it) and the CLI on one account."""
    phone = await osmand_user(stack, gateway, unique_email)
    await advance_clock(stack, RESEND_SECONDS + 1)
    a = await cli_login(stack, gateway, unique_email, tmp_path / "laptop")

    # the app's upload appears in the folder
    assert (await phone.upload("FAVOURITES", "from_phone.gpx", b"<gpx>phone</gpx>")).status == 200
    assert (await a.status())["cloud_changes"] == 1
    assert (await a.sync())["downloaded"] == 1
    assert a.read("favorites/from_phone.gpx") == b"<gpx>phone</gpx>"

    # the CLI's upload is in the app's list-files and downloads as the app reads it
    a.write("osm_notes/from_laptop.osc", b"<osmChange laptop/>")
    assert (await a.sync())["uploaded"] == 1
    listing = await phone.listing()
    assert {(f["type"], f["name"]) for f in listing["uniqueFiles"]} == {
        ("FAVOURITES", "from_phone.gpx"), ("OSM_NOTES", "from_laptop.osc")}
    import gzip
    status, raw, _ = await phone.download("OSM_NOTES", "from_laptop.osc")
    assert status == 200 and gzip.decompress(raw) == b"<osmChange laptop/>"

    # the app's deletion propagates to the folder, and the CLI's to the app
    assert (await phone.delete_file("FAVOURITES", "from_phone.gpx")).status == 200
    assert (await a.sync())["deleted_here"] == 1
    assert a.read("favorites/from_phone.gpx") is None
    (a.folder / "osm_notes" / "from_laptop.osc").unlink()
    assert (await a.sync())["deleted_in_cloud"] == 1
    assert (await phone.listing())["uniqueFiles"] == []

    # an edit in the app while the laptop edits too: a conflict, decided by versions
    a.write("osm_notes/shared.osc", b"<v1/>")
    await a.sync()
    assert (await phone.upload("OSM_NOTES", "shared.osc", b"<v2 from phone/>")).status == 200
    a.write("osm_notes/shared.osc", b"<v2 from laptop/>")
    conflicted = await a.sync(expect=EXIT_CONFLICTS)
    assert paths(conflicted["conflicts"]) == ["osm_notes/shared.osc"]
    await a.json("resolve", "osm_notes/shared.osc", "--download-cloud")
    assert a.read("osm_notes/shared.osc") == b"<v2 from phone/>"


async def test_interrupted_sync_resumes_without_losing_or_conflicting(stack, gateway, unique_email, tmp_path):
    """A sync stopped after the server stored an upload but before the folder recorded it
    (the state database is put back as it was): the next sync finds both sides equal."""
    a, b = await two_clients(stack, gateway, unique_email, tmp_path)
    a.write("favorites/f.gpx", b"<gpx>1</gpx>")
    await a.sync()
    state = a.folder / ".osmcloud" / "state.db"
    saved = {p: p.read_bytes() for p in state.parent.glob("state.db*")}
    a.write("favorites/f.gpx", b"<gpx>2</gpx>")
    a.write("favorites/g.gpx", b"<gpx>new</gpx>")
    assert (await a.sync())["uploaded"] == 2
    for p in state.parent.glob("state.db*"):
        p.unlink()
    for p, content in saved.items():
        p.write_bytes(content)
    resumed = await a.sync()
    assert resumed["agreed"] == 2 and resumed["uploaded"] == 0 and resumed["conflicts"] == []
    assert (await b.sync())["downloaded"] == 2


@pytest.mark.parametrize("args", [("status",), ("sync",)])
async def test_offline_and_not_logged_in_are_clear_exit_codes(tmp_path, args):
    nobody = Client(tmp_path / "none", tmp_path / "folder")
    missing = await nobody(*args)
    assert missing.exit_code == 3 and "osmcloud login" in missing.stderr
    from osmcloud_cli import config
    config.save(nobody.config_dir, config.Credentials(server="http://127.0.0.1:9", email="x@example.test", token="t",
                                                      user_id="u", device_id="d", folder=str(nobody.folder)))
    offline = await nobody(*args)
    assert offline.exit_code == 4 and "cannot reach http://127.0.0.1:9" in offline.stderr
    assert "Traceback" not in offline.stderr + offline.stdout
    assert os.listdir(nobody.folder) == [".osmcloud"]
