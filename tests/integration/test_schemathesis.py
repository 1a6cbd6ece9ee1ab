"""Schemathesis (every check) over docs/openapi.yaml through the gateway: the API answers what
the file says — documented statuses, content types, headers and schemas, 405 with Allow for
an undeclared method, schema-valid requests accepted and invalid ones refused — and never a
server error.

The CLI runs as a subprocess so its own summary is what the test prints and judges (exit
code 0: no failure). Deterministic generation, so every run sends the same cases; the budget
(MAX_EXAMPLES per operation and phase) keeps it to about a minute on the 2-core machine.
Authenticated: the fixture signs a user in through the login-code flow, reading the code
from the SMTP sink (schemathesis/hooks.py signs in again whenever a case ended that session),
and an OsmAnd device up through /userdata/ for the protocol's deviceid + accessToken
(schemathesis/schemathesis.toml)."""

import os
import subprocess
import sys
from pathlib import Path

from osmcloud_localstack.client import login, osmand_sign_up

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent / "schemathesis"
MAX_EXAMPLES = 5
TIMEOUT_SECONDS = 600


async def test_schemathesis_finds_nothing(stack, gateway, tmp_path):
    native, _ = await login(gateway, stack.smtp_sink_url)
    assert (await native.call("POST", "/api/billing/start")).status == 201
    _, device = await osmand_sign_up(gateway, stack.smtp_sink_url)
    config = tmp_path / "schemathesis.toml"
    config.write_text((HERE / "schemathesis.toml").read_text() + "\n[parameters]\n"
                      f'"query.deviceid" = {int(device["id"])}\n"query.accessToken" = "{device["accesstoken"]}"\n')
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HERE / "hooks.py"),
           "OSMCLOUD_ST_GATEWAY": stack.gateway_url, "OSMCLOUD_ST_SMTP_SINK": stack.smtp_sink_url,
           "OSMCLOUD_ST_TOKEN": native.token}
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config),
               "run", str(ROOT / "docs" / "openapi.yaml"), "--url", stack.gateway_url, "--checks", "all",
               "--max-examples", str(MAX_EXAMPLES), "--workers", "1", "--no-color",
               "--report", "junit", "--report-dir", str(tmp_path)]
    run = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    output = run.stdout + run.stderr
    summary = [line for line in output.splitlines() if line.startswith("====")][-1:]
    print(f"\n  schemathesis: {summary[0] if summary else '(no summary)'}")
    assert run.returncode == 0, output[-20000:]
