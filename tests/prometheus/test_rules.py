"""deploy/prometheus and deploy/grafana, checked without a running system:

- `promtool check rules` on the alert rules and `promtool test rules` on their unit tests
  (deploy/prometheus/alerts_test.yml: each alert fires on the series that should trigger it);
- `promtool check config` on the local stack's generated prometheus.yml;
- every metric the rules and the dashboard query is one the services expose (or Prometheus'
  own `up`), so a renamed metric cannot silently blind an alert;
- the Grafana dashboard and its provisioning files parse, and the dashboard follows the
  schema (deploy/grafana/dashboard.schema.json).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from osmcloud_localstack import monitoring
from osmcloud_localstack.paths import ToolMissing, prometheus_binary

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "osmcloud.json"
ALERTS = {"OsmcloudServiceDown", "OsmcloudServiceMissing", "OsmcloudHighErrorRate", "OsmcloudConsumerLagGrowing",
          "OsmcloudConsumerLagHigh", "OsmcloudConsumerLagUnknown", "OsmcloudOutboxBacklogOld", "OsmcloudDeadLetters",
          "OsmcloudPurgeBehind", "OsmcloudPurgeLagging"}


@pytest.fixture(scope="module")
def promtool() -> Path:
    try:
        return prometheus_binary("promtool")
    except ToolMissing as exc:
        pytest.fail(str(exc), pytrace=False)


def _run(*argv, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_the_rules_are_valid(promtool):
    result = _run(promtool, "check", "rules", "--lint=all", "--lint-fatal", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    rules = yaml.safe_load(RULES.read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert names == ALERTS
    for group in rules["groups"]:
        for rule in group["rules"]:
            anchor = rule["alert"].lower()
            assert rule["annotations"]["runbook"] == f"docs/observability.md#{anchor}"
            assert f"## {rule['alert']}" in (ROOT / "docs" / "observability.md").read_text(), \
                f"docs/observability.md has no runbook section for {rule['alert']}"


def test_every_alert_fires_in_its_unit_test(promtool):
    result = _run(promtool, "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert tested == ALERTS, f"alerts without a unit test: {sorted(ALERTS - tested)}"


def test_the_local_stacks_prometheus_config_is_valid(promtool, tmp_path):
    config = monitoring.write_prometheus_config(
        tmp_path, {"auth": ["127.0.0.1:8081"], "files": ["127.0.0.1:8082"], "prometheus": ["127.0.0.1:8096"]}, ROOT)
    result = _run(promtool, "check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    loaded = yaml.safe_load(config.read_text())
    assert all(s["static_configs"][0]["labels"]["service"] == s["job_name"] for s in loaded["scrape_configs"])


def _exposed_metrics() -> set[str]:
    """Every sample name the services expose (one app per service, nothing needs to run)."""
    from osmcloud_auth.app import build_app as auth_app
    from osmcloud_billing.app import build_app as billing_app
    from osmcloud_common.http import REGISTRY_KEY
    from osmcloud_files.app import build_app as files_app
    from osmcloud_trash.app import build_app as trash_app

    names = set()
    for build in (auth_app, files_app, trash_app, billing_app):
        app = build()
        for family in text_string_to_metric_families(generate_latest(app[REGISTRY_KEY]).decode()):
            names.add(family.name)
            names.update({f"{family.name}_total", f"{family.name}_bucket", f"{family.name}_count",
                          f"{family.name}_sum"} if family.type in ("counter", "histogram") else set())
            names.update(s.name for s in family.samples)
    return names


def _queried_metrics(expression: str) -> set[str]:
    words = set(re.findall(r"\b([a-z_][a-z0-9_]*)\b(?!\s*\()", re.sub(r'"[^"]*"', "", expression)))
    keywords = {"by", "without", "and", "or", "unless", "offset", "on", "ignoring", "group_left", "group_right",
                "le", "bool", "service", "group", "topic", "partition", "collection", "instance", "status",
                "route", "method", "event_type", "job", "reason"}
    return {w for w in words - keywords if "_" in w or w == "up"}


def test_every_metric_the_rules_and_dashboard_use_is_exposed():
    exposed = _exposed_metrics() | {"up"}
    rules = yaml.safe_load(RULES.read_text())
    expressions = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    expressions += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for expression in expressions:
        unknown = _queried_metrics(expression) - exposed
        assert not unknown, f"{expression!r} queries metrics no service exposes: {sorted(unknown)}"
    # the list: each has a metric
    for metric in ("http_requests_total", "http_request_seconds_bucket", "kafka_consumer_lag",
                   "outbox_pending_documents", "outbox_oldest_pending_seconds", "events_dead_lettered_total",
                   "trash_items", "trash_items_purged_total", "http_refusals_total", "verify_cache_hits_total"):
        assert metric in exposed, metric


def test_the_dashboard_and_its_provisioning_are_valid():
    schema = json.loads((GRAFANA / "dashboard.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    dashboard = json.loads(DASHBOARD.read_text())
    jsonschema.validate(dashboard, schema, cls=jsonschema.Draft202012Validator)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "osmcloud.yaml").read_text())
    assert provider["apiVersion"] == 1 and provider["providers"][0]["type"] == "file"
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    (source,) = datasource["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == "prometheus"
    uids = {t.get("datasource", {}).get("uid") for p in dashboard["panels"] for t in p.get("targets", [])}
    assert uids == {"${datasource}"}
