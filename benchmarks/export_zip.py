"""The account export's zip layer (services/files export.py) on its own: how fast it zips and
sends, and how much memory it holds, for an account of SIZE bytes in FILES files. Blobs come
from memory in the blob store's 4 MiB chunks (the same chunk object again and again, so the
data costs no memory), the zip goes to a sink that only counts: what is measured is the zip
writer and the streaming, not S3 or the network.

    .venv/bin/python benchmarks/export_zip.py [SIZE_MIB=1024] [FILES=1000]"""

import asyncio
import resource
import sys
import time

from osmcloud_common.blobstore import DOWNLOAD_CHUNK
from osmcloud_files.export import stream_export


class Cursor:
    def __init__(self, docs):
        self.docs = docs

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        for d in self.docs:
            yield d


class Store:
    def __init__(self, versions):
        self.by_id = {v["_id"]: v for v in versions}

    async def versions_by_ids(self, user_id, ids):
        return {i: self.by_id[i] for i in ids}

    def stream_live_heads(self, user_id, types):
        return Cursor([{"head": {"version_id": vid}} for vid in self.by_id])


class Blobs:
    def __init__(self, size_of):
        self.size_of = size_of
        self.chunk = bytes(range(256)) * (DOWNLOAD_CHUNK // 256)

    async def stream(self, key):
        left = self.size_of[key]
        while left > 0:
            part = self.chunk if left >= len(self.chunk) else self.chunk[:left]
            left -= len(part)
            yield part


async def main(size_mib: int, files: int) -> None:
    per_file = size_mib * 1024 * 1024 // files
    versions = [{"_id": f"v{i}", "type": "GPX", "name": f"tracks/{i}.gpx", "size": per_file,
                 "checksum": "sha256:-", "blob_key": f"b{i}", "updated_ms": 1_700_000_000_000 + i}
                for i in range(files)]
    sent = 0

    async def send(data: bytes) -> None:
        nonlocal sent
        sent += len(data)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    summary = await stream_export(Store(versions), Blobs({v["blob_key"]: per_file for v in versions}), "u", False, send)
    took = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{summary['files']} files, {summary['bytes'] / 2**20:.0f} MiB of content -> {sent / 2**20:.1f} MiB zip "
          f"in {took:.2f} s ({summary['bytes'] / 2**20 / took:.0f} MiB/s); peak RSS {peak / 1024:.0f} MiB "
          f"(+{(peak - before) / 1024:.0f} MiB while exporting)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1024, int(sys.argv[2]) if len(sys.argv) > 2 else 1000))
