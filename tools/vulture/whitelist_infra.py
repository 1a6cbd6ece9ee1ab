"""vulture's false positives in infra/localstack/src and benchmarks (names used where it does not look).

osmcloud_localstack is the test handle: most of its public names are called only from tests/integration,
tests/helm and the unit tests, which vulture does not read. `_.name` marks a name as used (vulture is
name-based); this file is never imported or run.
Run: .venv/bin/vulture --min-confidence 60 infra/localstack/src benchmarks tools/vulture/whitelist_infra.py
"""

_ = object()

# third-party interfaces: called by the framework, by name
_.handle_RCPT  # smtp_sink.SinkHandler: aiosmtpd's RCPT hook
_.handle_DATA  # smtp_sink.SinkHandler: aiosmtpd's DATA hook

# fields written to JSON (dataclasses.asdict) and read from it by name
_.last_exit_at  # supervisor.ProcessStatus: the status file; stack.Stack.status() and docs/operations.md

# the test handle, used from the tests (tests/integration/conftest.py and the test modules)
_.select_mode  # testing: conftest picks env, local or testcontainers
_.env_stack  # testing: the stack named by OSMCLOUD_* variables (conftest)
_.local_stack  # testing: the stack as local processes (conftest)
_.testcontainers_stack  # testing: infrastructure in containers (conftest)
_.logs_dir  # testing.StackHandle: tests/integration/test_attacks.py reads the gateway's logs
_.stop_service  # testing.StackHandle: test_restarts, test_monitoring, test_traces, files/test_s3_faults
_.start_service  # testing.StackHandle: the same tests and benchmarks/read_your_writes.py
_.SmtpSinkClient  # testing: conftest's `smtp` fixture
_.advance_clock  # testing: tests that pass a cooldown or an expiry
_.events_of  # testing: tests that read a domain's events from Kafka
_.service_now  # testing: tests that date receipts and deadlines in the services' time
_.service_replica  # testing: a second replica of a service (files/test_quota, test_trash, test_verify_cache)
_.error_code  # client.Reply: the tests' check of an error's code
_.osmand_sign_up  # client: tests/integration (test_tenancy, test_admin_api, test_api_conformance, ...)
_.helm_binary  # paths: tests/helm/conftest.py

# benchmarks/export_zip.py's fakes, called by name by osmcloud_files.export
_.stream_live_heads  # Store: FilesStore.stream_live_heads
_.stream  # Blobs: BlobStore.stream
