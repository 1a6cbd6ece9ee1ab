"""vulture's false positives in services/files and services/trash: names used where vulture
cannot see it (called by a library or by name, or part of an interface), each with its reason.

The bare reads are how vulture's whitelists mark names used (ruff's B018 is silenced per line
until pyproject ignores it for tools/vulture/).

Run: .venv/bin/vulture --min-confidence 60 services/files services/trash tools/vulture/whitelist_files_trash.py
"""

_ = object()

# admin handlers are called as handler(request, operator) by osmcloud_common.admin.AdminApi;
# the audit log records the operator, these handlers need not
_.operator  # noqa: B018

# files' export: zipfile calls tell() on the stream it writes to (offsets of its members)
_.tell  # noqa: B018

# BlobStore port (files/ports.py) and its fake: keyword parameters of the interface, which
# S3Blobs implements and callers may pass by name
_.parallel  # noqa: B018
_.chunk_size  # noqa: B018

# pydantic settings fields, read by name by osmcloud_common (ServiceSettings, Runtime)
_.uses_s3  # noqa: B018 — a ClassVar ServiceSettings reads: files needs the S3 settings
_.service_name  # noqa: B018
_.http_port  # noqa: B018
_.outbox_poll_seconds  # noqa: B018

# files' crash tests: the fake Kafka producer's method the outbox relay calls
_.publish_many  # noqa: B018

# files' admin-route tests: the fake audit log's method AdminApi calls
_.record  # noqa: B018
