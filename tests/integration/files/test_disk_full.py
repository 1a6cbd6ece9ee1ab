"""S3's disk full (issue 21, point 4), through the gateway on both APIs: the stack's own S3
server (versitygw) keeps its objects on a small filesystem that is then filled up. An upload
is refused cleanly - 503 JSON `storage_full` natively, OsmAnd's "try later" (errorCode 6) on
/userdata/ - and leaves no version, no blob, no reservation, also when the disk fills between
a large upload's parts and their assembly; reads keep working; once there is room again the
next uploads succeed, without restarting anything.

Mode local only: the S3 server must be a process of this stack and a tmpfs must be mountable
(root or CAP_SYS_ADMIN); elsewhere the test skips, saying which of the two is missing."""

import asyncio
import contextlib
import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from minio import Minio

from osmcloud_common.events import Entitlement
from osmcloud_localstack.client import GatewayClient, osmand_sign_up
from osmcloud_localstack.testing import StackHandle

MIB = 1024 * 1024
DISK = "16m"  # a 6 MiB upload needs 12 MiB while versitygw assembles it from its parts
BIG = Entitlement(plan="pro", quota_bytes=64 * MIB, max_file_bytes=8 * MIB, max_files=100,
                  allowed_types=["GPX", "OSM_NOTES"])
BOUNDARY = "CowMooCowMooCowCowCow"
KEPT = b"stored while there was room" * 40


def mount_small(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a {size} tmpfs for the S3 server's data (needs root or CAP_SYS_ADMIN): "
                    f"{mounted.stderr.strip()}")


def unmount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def s3_on_small_disk(stack: StackHandle, size: str, carried: Path):
    """The stack's versitygw, stopped and started again with a `size` tmpfs mounted over its
    data directory (and over its metadata sidecar, where it keeps one), the bucket made anew;
    yields the data directory. After: versitygw stopped, what was written there carried over
    to the real directory (as an operator moving to a bigger disk would), the tmpfs removed,
    versitygw started again."""
    local = stack.local
    data, sidecar = local.state / "s3data", local.state / "s3meta-sidecar"
    over = [data, *([sidecar] if sidecar.is_dir() else [])]
    stack.stop_service("versitygw")
    mounted: list[Path] = []
    try:
        for path in over:
            mount_small(path, size)
            mounted.append(path)
        stack.start_service("versitygw")
        Minio(stack.s3_endpoint, access_key=stack.s3_access_key, secret_key=stack.s3_secret_key,
              secure=stack.s3_secure).make_bucket(stack.s3_bucket)
        yield data
    finally:
        stack.stop_service("versitygw")
        carried.mkdir(parents=True, exist_ok=True)
        for path in mounted:
            shutil.rmtree(carried / path.name, ignore_errors=True)
            subprocess.run(["cp", "-a", f"{path}/.", str(carried / path.name)], check=False)
            unmount(path)
        for path in mounted:
            subprocess.run(["cp", "-a", "--no-clobber", f"{carried / path.name}/.", str(path)], check=False)
        stack.start_service("versitygw")


def fill(directory: Path, leave: int = 0) -> Path:
    """A file taking all the room on `directory`'s filesystem but `leave` bytes."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        room = shutil.disk_usage(directory).free - leave
        block = b"\0" * (64 * 1024)
        while room > 0:
            try:
                room -= os.write(fd, block[:min(len(block), room)])
            except OSError:  # ENOSPC: full
                break
    finally:
        os.close(fd)
    return filler


def left_behind(data: Path, bucket: str) -> list[str]:
    """Files under the bucket's directory other than finished objects: parts, temporary files."""
    return [str(p.relative_to(data)) for p in (data / bucket).rglob("*") if p.is_file() and ".sgwtmp" in p.parts]


class Phone:
    """OsmAnd's /userdata/ file calls, as the app sends them."""

    def __init__(self, gateway: GatewayClient, device: dict) -> None:
        self.gw = gateway.with_token(None)
        self.creds = {"deviceid": str(device["id"]), "accessToken": device["accesstoken"]}

    async def upload(self, name: str, content: bytes):
        head = (f"--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{name}.gz\"\r\n"
                f"content-type: application/octet-stream\r\n\r\n").encode()
        body = head + gzip.compress(content) + f"\r\n--{BOUNDARY}--\r\n".encode()
        return await self.gw.call("POST", "/userdata/upload-file", data=body, params={
            **self.creds, "name": name, "type": "OSM_NOTES", "clienttime": "1700000000000", "autoSync": "false"},
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})

    async def download(self, name: str):
        return await self.gw.call("GET", "/userdata/download-file",
                                  params={**self.creds, "name": name, "type": "OSM_NOTES"})


async def test_s3_disk_full_uploads_are_refused_cleanly_reads_work_and_room_again_suffices(
        supervised_stack, files, gateway, tmp_path):
    stack = supervised_stack
    if not stack.controls("versitygw"):
        pytest.skip(f"mode {stack.mode}: the S3 server is not a process of this stack, its disk is not ours to "
                    f"shrink (mode local covers this)")
    me, session = await files.user_with(BIG)
    user = session["user_id"]
    phone_client, device = await osmand_sign_up(gateway, stack.smtp_sink_url)  # on Start from its sign-up
    await files.wait_plan(phone_client, "start", 5 * MIB)
    phone_user = (await phone_client.call("GET", "/api/auth/account")).body["user_id"]
    phone = Phone(gateway, device)
    files_pid = stack.process_info("files")["pid"]

    with s3_on_small_disk(stack, DISK, tmp_path / "carried") as data:
        assert (await me.call("PUT", "/api/files/OSM_NOTES/kept.osn", data=KEPT)).status == 201
        assert (await phone.upload("kept.osn", KEPT)).status == 200
        filler = await asyncio.to_thread(fill, data)

        # full: every upload is refused, small, large (multipart) and OsmAnd's
        for size in (300, 6 * MIB):
            refused = await me.call("PUT", "/api/files/GPX/new.gpx", data=os.urandom(size))
            assert refused.status == 503, refused
            assert refused.body["error"]["code"] == "storage_full", refused
            assert "nothing was stored" in refused.body["error"]["message"], refused
            assert refused.headers["Retry-After"] == "5"
        refused = await phone.upload("new.osn", b"a note" * 100)
        assert refused.status == 400 and refused.body["error"]["errorCode"] == 6, refused
        assert "storage is full" in refused.body["error"]["message"], refused

        # ... and leaves nothing: no version, no blob, no part, no reservation
        for who in (user, phone_user):
            await files.quiet(who)
            versions = await files.versions(who)
            assert [v["name"] for v in versions] == ["kept.osn"]
            assert await files.blob_keys(who) == [versions[0]["blob_key"]]
            await files.assert_nothing_held(who, used_bytes=versions[0]["size"], file_count=1)
        assert left_behind(data, stack.s3_bucket) == []

        # reads keep working
        read = await me.call("GET", "/api/files/OSM_NOTES/kept.osn")
        assert read.status == 200 and read.body == KEPT, read
        listing = await me.call("GET", "/api/files")
        assert listing.status == 200 and [f["name"] for f in listing.body["files"]] == ["kept.osn"]
        read = await phone.download("kept.osn")
        assert read.status == 200 and read.body == KEPT, read  # served gzip-encoded, decoded by the client

        # room for a large upload's parts but not for their assembly: refused the same way
        filler.unlink()
        await asyncio.to_thread(fill, data, 8 * MIB)
        refused = await me.call("PUT", "/api/files/GPX/new.gpx", data=os.urandom(6 * MIB))
        assert refused.status == 503 and refused.body["error"]["code"] == "storage_full", refused
        assert [v["name"] for v in await files.versions(user)] == ["kept.osn"]
        await files.assert_nothing_held(user, used_bytes=len(KEPT), file_count=1)
        assert left_behind(data, stack.s3_bucket) == []

        # room again: the next uploads succeed, nothing was restarted for it but the S3 server
        filler.unlink()
        large = os.urandom(6 * MIB)
        stored = await me.call("PUT", "/api/files/GPX/new.gpx", data=large)
        assert stored.status == 201, stored
        assert (await phone.upload("new.osn", b"a note" * 100)).status == 200
        read = await me.call("GET", "/api/files/GPX/new.gpx")
        assert read.status == 200 and read.body == large
        assert stack.process_info("files")["pid"] == files_pid
        for who in (user, phone_user):
            await files.quiet(who)
            versions = await files.versions(who)
            assert sorted(v["name"] for v in versions) == ["kept.osn", "new.gpx" if who == user else "new.osn"]
            assert sorted(await files.blob_keys(who)) == sorted(v["blob_key"] for v in versions)
            await files.assert_nothing_held(who, used_bytes=sum(v["size"] for v in versions), file_count=2)

    # the objects were carried over to the S3 server's real directory
    read = await me.call("GET", "/api/files/GPX/new.gpx")
    assert read.status == 200 and read.body == large
