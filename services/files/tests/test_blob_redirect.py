"""The X-Accel-Redirect target files gives the gateway for a download."""

from osmcloud_files.routes import blob_redirect


class FakeBlobs:
    async def presigned_get(self, key: str) -> str:
        return f"/osmcloud-blobs/{key}?X-Amz-Signature=abc&X-Amz-Expires=300"


VERSION = {"_id": "0123abcd", "blob_key": "users/u1/0123abcd", "checksum": "sha256:ff00"}


async def test_whole_blob():
    assert await blob_redirect(FakeBlobs(), VERSION, None) == (
        "/_blob/0123abcd/sha256:ff00/all/osmcloud-blobs/users/u1/0123abcd?X-Amz-Signature=abc&X-Amz-Expires=300")


async def test_a_judged_range_and_no_checksum():
    target = await blob_redirect(FakeBlobs(), {**VERSION, "checksum": None}, (10, 19))
    assert target.startswith("/_blob/0123abcd/none/bytes=10-19/osmcloud-blobs/users/u1/0123abcd?")


async def test_what_nginx_could_not_pass_on_unchanged_is_streamed_by_files():
    assert await blob_redirect(FakeBlobs(), {**VERSION, "_id": "a/b"}, None) is None
    assert await blob_redirect(FakeBlobs(), {**VERSION, "blob_key": "users/u%201/x"}, None) is None
