"""The chaos command's short version (issue 21): on a stack of its own, every process — the
four services, files as one of two replicas behind the gateway, Kafka, the MongoDB-protocol
server, the S3 server and nginx — is killed once with SIGKILL under a small mix of clients on
both APIs; after each fault, once it is back (restarted by a supervisor, or by the chaos run
itself after a few seconds) and the system has settled, every invariant holds: nothing
acknowledged lost, usage exact, reservations drained, no orphan, every delete in the trash, no
effect twice, outboxes drained, no 5xx outside a fault and only 503 JSON inside one. The full
run is `make chaos` (docs/faults.md)."""

import asyncio
import os

import pytest

from osmcloud_localstack.chaos import CHAOS_SERVICE_ENV, FAULTS, Chaos, LocalControl, Plan, table
from osmcloud_localstack.own_stack import own_stack

# its own block of ports beside the test stack's (OSMCLOUD_TEST_BASE_PORT .. +16)
BASE_PORT = int(os.environ.get("OSMCLOUD_TEST_BASE_PORT", "28080")) + 40
SHORT = Plan(faults=FAULTS, kills=1, clients=4, warm=1.5, after=1.0, restart_after=2.0, margin=2.0, settle=45.0,
             deadline=600.0, large_bytes=512 * 1024)


@pytest.mark.timeout(900)  # bounded by the plan; the stack alone takes 20-80 s to start on a busy machine
def test_every_process_killed_once_loses_nothing():
    lines: list[str] = []
    with own_stack("chaos-test", base_port=BASE_PORT, sandbox_store=True, log_level="warning",
                   service_env=dict(CHAOS_SERVICE_ENV)) as (stack, endpoints):
        rows = asyncio.run(Chaos(LocalControl(stack), endpoints, SHORT, say=lines.append).run())
    report = "\n".join([*lines, "", table(rows)])
    print(report)
    assert [r.fault for r in rows] == list(FAULTS), report
    assert all(r.requests > 0 for r in rows), report
    assert all(r.restarted_by in ("chaos", "supervisor") for r in rows), report
    assert all(r.events > 0 for r in rows), report  # the checks of Kafka's events read some
    violations = {r.fault: {k: v for k, v in r.violations.items() if v} for r in rows if not r.ok}
    assert not violations, report
