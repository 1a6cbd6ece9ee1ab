"""vulture's false positives in services/files and services/trash: names used where vulture
cannot see it (called by a library or by name, or part of an interface), each with its reason.

The bare attribute reads are how vulture's whitelists mark names used (pyproject lets ruff's
B018 pass in tools/vulture/).

Run: .venv/bin/vulture --min-confidence 60 services/files services/trash tools/vulture/whitelist_files_trash.py
"""

_ = object()

# admin handlers are called as handler(request, operator) by osmcloud_common.admin.AdminApi;
# the audit log records the operator, these handlers need not
_.operator

# files' export: zipfile calls tell() on the stream it writes to (offsets of its members)
_.tell

# BlobStore port (files/ports.py) and its fake: keyword parameters of the interface, which
# S3Blobs implements and callers may pass by name
_.parallel
_.chunk_size

# pydantic settings fields, read by name by osmcloud_common (ServiceSettings, Runtime)
_.uses_s3  # a ClassVar ServiceSettings reads: files needs the S3 settings
_.service_name
_.http_port
_.outbox_poll_seconds

# files' crash tests: the fake Kafka producer's method the outbox relay calls
_.publish_many

# files' admin-route tests: the fake audit log's method AdminApi calls
_.record

# the ledger's Protocol of the accounts collection: PyMongo's keyword argument, passed by name
_.return_document

# entry points only the unit tests call: each states a rule or an answer as a whole, which the
# service applies piece by piece (vulture's configured run reads src/ only, not the tests)
_.files_to_trash  # files/grace_rule.py: the grace-end decision for a list (test_grace_rule.py)
_.list_files_result  # files/osmand_files.py: list-files' whole answer (test_osmand_files.py)
_.is_due  # trash/domain.py: the expiry rule the store's `due` query applies (trash test_domain.py)

# listing.py: how many calls read every head, read by the service tests that check a listing
# catches up instead (vulture does not scan tests)
_.full_reads
