"""Zips at once, through the gateway (docs/backup-download.md "Zips at once"): files streams at
most ZIP_DOWNLOADS_MAX (4) backups and chosen-file downloads together and
ZIP_DOWNLOADS_PER_ACCOUNT (2) of one account. Downloads are held open by clients that read
their first bytes and then stop reading; the next over a limit is 429 too_many_downloads with
Retry-After before any byte, another account is not held back by the first's share while slots
remain, a zip read to its end gives its slot back at once, and so does a client that goes away."""

import io
import json
import os
import zipfile
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp

from osmcloud_common.events import Entitlement
from osmcloud_localstack.client import GatewayClient, eventually

MIB = 1024 * 1024
PRO = Entitlement(plan="pro", quota_bytes=3000 * MIB, allowed_types=None)


def _bytes_in_between() -> int:
    """The most a client that stopped reading leaves buffered between it and files: two TCP
    connections (files to the gateway, the gateway to the client), each a send and a receive
    buffer at the kernel's maxima (autotuning grows them up to those), and the gateway's 2.3 MiB
    of proxy buffers. On this machine 32 + 4 MiB a connection; a zip of 12 MiB was sent whole
    into them, so the zip here is larger than the bound, not a guess."""
    try:
        rmem, wmem = (int(Path(f"/proc/sys/net/ipv4/tcp_{kind}").read_text().split()[2]) for kind in ("rmem", "wmem"))
    except (OSError, IndexError, ValueError):  # not Linux: its usual maxima
        rmem, wmem = 6 * MIB, 4 * MIB
    return 2 * (rmem + wmem) + 3 * MIB


# one file larger than all that, so a zip of it stays open in files until its client reads on
# or goes away
BIG = _bytes_in_between() + 4 * MIB
ZIP_START = b"PK\x03\x04"


async def held(stack: AsyncExitStack, me: GatewayClient, chosen: bool = False) -> aiohttp.ClientResponse:
    """A zip that has started (its first bytes read) and whose client then stops reading."""
    request = me.session.post(me.base + "/api/files/download", json={"files": [{"type": "FILE", "name": "big.bin"}]},
                              headers=_auth(me)) if chosen else \
        me.session.get(me.base + "/api/files/backup", headers=_auth(me))
    response = await stack.enter_async_context(request)
    assert response.status == 200, await response.text()
    assert await response.content.readexactly(len(ZIP_START)) == ZIP_START
    return response


def _auth(me: GatewayClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {me.token}"}


def refused(reply, limit: str, retry_after: int) -> None:
    assert reply.status == 429, reply
    assert reply.error_code() == "too_many_downloads" and reply.body["error"]["limit"] == limit, reply
    assert reply.headers["Retry-After"] == str(retry_after) == str(reply.body["error"]["retry_after_seconds"])


async def test_zips_at_once_are_bounded_per_account_and_per_process(files, stack):
    a, _ = await files.user_with(PRO)
    b, _ = await files.user_with(PRO)
    c, c_session = await files.user_with(PRO)  # stores nothing: its backup is the manifest alone
    body = os.urandom(BIG)
    for me in (a, b):
        assert (await me.call("PUT", "/api/files/FILE/big.bin", data=body)).status == 201

    async with AsyncExitStack() as open_zips:
        a1, _ = await held(open_zips, a), await held(open_zips, a, chosen=True)
        # a's third, by either call: the account's share; nothing of a zip is sent
        refused(await a.call("GET", "/api/files/backup"), "account", 30)
        mine = await a.call("POST", "/api/files/download", json={"files": [{"type": "FILE", "name": "big.bin"}]})
        refused(mine, "account", 30)
        assert mine.body["error"]["max_downloads"] == 2 and "let one finish" in mine.body["error"]["message"]

        # another account is not held back by a's share while slots remain; then every slot is taken
        b1, _ = await held(open_zips, b), await held(open_zips, b, chosen=True)
        full = await c.call("GET", "/api/files/backup")
        refused(full, "server", 10)
        assert full.body["error"]["max_downloads"] == 4 and "ask again in 10 s" in full.body["error"]["message"]
        assert await _in_flight(stack) in (None, 4)

        # a's first zip read to its end (a whole zip): c's next starts at once
        rest = await a1.read()
        with zipfile.ZipFile(io.BytesIO(ZIP_START + rest)) as archive:
            assert archive.read("files/FILE/big.bin") == body
        mine = await c.call("GET", "/api/files/backup")
        assert mine.status == 200, mine
        with zipfile.ZipFile(io.BytesIO(mine.body)) as archive:
            assert archive.namelist() == ["manifest.json"]
            assert json.loads(archive.read("manifest.json"))["user_id"] == c_session["user_id"]

        # full again; then a client goes away mid-zip: its slot comes back
        await held(open_zips, a)
        refused(await c.call("GET", "/api/files/backup"), "server", 10)
        b1.close()

        async def c_gets_its_zip():
            # a disconnect has no answer to wait for: files learns of it from its next write,
            # so c asks as a client that honours Retry-After would, only sooner
            reply = await c.call("GET", "/api/files/backup")
            return reply if reply.status != 429 else None
        after = await eventually(c_gets_its_zip, timeout=30, what="the slot of the zip whose client went away back")
        assert after.status == 200 and zipfile.ZipFile(io.BytesIO(after.body)).namelist() == ["manifest.json"]
    # every client gone: every slot back
    await eventually(_none_in_flight(stack), timeout=30, what="zip_downloads_in_flight back to 0")


async def _in_flight(stack) -> float | None:
    """files' zip_downloads_in_flight, or None when the stack does not say where files listens."""
    url = stack.service_urls.get("files")
    if url is None:
        return None
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as reply:
        text = await reply.text()
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith("zip_downloads_in_flight "))


def _none_in_flight(stack):
    async def probe():
        return await _in_flight(stack) in (None, 0)
    return probe
