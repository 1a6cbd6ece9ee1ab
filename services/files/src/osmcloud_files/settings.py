from typing import ClassVar

from pydantic import Field

from osmcloud_common.settings import ServiceSettings


class FilesSettings(ServiceSettings):
    uses_s3: ClassVar[bool] = True
    service_name: str = "files"
    http_port: int = 8082
    # auth, asked to verify the deviceid + accessToken of OsmAnd's /userdata/ calls
    auth_url: str = "http://127.0.0.1:8081"
    # trash's own address: deletes, restores by version removal and uploads over a trashed
    # file hand their events over there before answering (read-your-writes, handover.py)
    trash_url: str = "http://127.0.0.1:8083"
    # hard cap of one upload whatever the plan says (the reference server allows 50 MB)
    max_upload_bytes: int = 4 * 1024 * 1024 * 1024
    # most files one bulk upload (POST /api/files/bulk) may carry; a request with more is
    # answered 413 after the first this many (docs/bulk-upload.md)
    bulk_max_files: int = Field(default=1000, ge=1, le=100_000)
    # zips (GET /api/files/backup, POST /api/files/download) this process streams at once, and
    # of them one account's; each holds a few MiB, an S3 stream and a database cursor while
    # its client reads. One over either is answered 429 too_many_downloads (docs/backup-download.md)
    zip_downloads_max: int = Field(default=4, ge=1, le=1000)
    zip_downloads_per_account: int = Field(default=2, ge=1, le=1000)
    # a zip whose client has taken nothing for this long (the gateway's buffers full) is cut
    # off and its slot given back; a client reading slower than ~5 KiB/s may be cut too
    zip_stall_seconds: float = Field(default=120.0, gt=0, le=3600)
    # files whose listing entries this process keeps, over all accounts (~0.6 KiB each: ~29 MiB
    # at the default), so that a listing reads only the heads changed since the last one
    # (listing.py; 0: none)
    listing_cache_files: int = Field(default=50_000, ge=0, le=10_000_000)
    # how often the reconciler looks for abandoned operations (and retries deferred blob deletions)
    reconcile_seconds: float = 10.0
    # an operation (upload, delete, ...) whose process stopped renewing it for this long is
    # taken for dead and finished or undone by the reconciler; its reservation drains then.
    # Uploads renew every tenth of it. The chaos command's stack shortens it to see
    # reservations drain within its run (benchmarks/chaos.py)
    operation_ttl_seconds: float = 600.0
    # the relay is woken for each written document; this poll only finds what an outage or
    # a crash left (a query for documents flagged pending per outbox collection), so files,
    # whose collections are the largest, polls less often than the other services' 1 s
    outbox_poll_seconds: float = 5.0
    # native downloads (GET /api/files/...) through a gateway that offers it (the header
    # X-Blob-Redirect: on) are answered with a presigned X-Accel-Redirect: nginx then streams
    # the bytes from S3 itself, without this process in the byte path (docs/architecture.md,
    # "Files, versions and quotas")
    blob_redirect: bool = True
