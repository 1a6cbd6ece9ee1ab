"""Vulture whitelist for libs/common (osmcloud_common): names vulture cannot see used.

Vulture is name-based and reads only the paths it is given; these are used by name from
outside those paths (tests, a framework's interface) or are part of a published catalogue.
Run: vulture --min-confidence 60 <pyproject [tool.vulture] paths> tools/vulture/whitelist_common.py"""

# pydantic: fields and config read by name
_.schema_version  # events.Event envelope field: serialized with every event
_.freed_bytes  # events.TrashPurged payload field: serialized, read by the files service's consumers
_.model_config  # settings.ServiceSettings: pydantic-settings reads it

# third-party interfaces, called by the framework
_.collect  # metrics._FunctionCollector: prometheus_client's Collector interface
_.is_trace_id_random  # tracing: OpenTelemetry SDK IdGenerator interface
_.succeeded  # tracing.mongo_listeners: PyMongo CommandListener interface

# the OsmAnd protocol's catalogue: every errorCode the app knows, used or not by us yet
_.SUBSCRIPTION_EXPIRED  # osmand.ErrorCode 110

# test helpers the library provides to every package's tests (services/*/tests, tests/integration)
FixedClock  # clock: the unit tests' clock
freeze_shared_clock  # clock: tests/integration/test_billing_lifecycle.py
_.list_keys  # blobstore.BlobStore: tests/integration/files/conftest.py
decode_value  # outbox: service-layer tests read the events a use case recorded
RecordingPublisher  # publisher: the in-memory publisher of service-layer tests
_.publish  # kafka.KafkaProducer: one message (libs/common tests); the relay uses publish_many

# fakes in libs/common/tests: keyword parameters of the PyMongo methods they stand in for
_.ordered  # insert_many(..., ordered=False)
_.return_document  # find_one_and_update(..., return_document=...)
