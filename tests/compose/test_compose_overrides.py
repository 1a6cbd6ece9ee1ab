"""The compose override files of infra/images/ keep to what they promise, checked without Docker:

- docker-compose.local.yml only swaps images (and the health checks whose tool is not in ours)
  for builds in our own namespace that osmcloud_localstack.images knows how to build;
- docker-compose.test.yml only publishes ports, each on 127.0.0.1;
- both name only services of docker-compose.yml.
(Running them for real is `make compose-test` / `make compose-scale`, on a Docker engine.)
"""

from __future__ import annotations

from pathlib import Path

import yaml

from osmcloud_localstack.images import CATALOG

ROOT = Path(__file__).resolve().parents[2]
MAIN = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
LOCAL = yaml.safe_load((ROOT / "infra/images/docker-compose.local.yml").read_text())
TEST = yaml.safe_load((ROOT / "infra/images/docker-compose.test.yml").read_text())


def test_overrides_name_only_services_of_the_main_file() -> None:
    for override in (LOCAL, TEST):
        assert set(override["services"]) <= set(MAIN["services"])


def test_local_override_swaps_every_image_for_a_local_build_and_nothing_else() -> None:
    buildable = {img.tag for img in CATALOG.values()}
    allowed = {"image", "pull_policy", "healthcheck", "build"}
    assert set(LOCAL["services"]) == set(MAIN["services"]), "every service runs a local build"
    for name, service in LOCAL["services"].items():
        assert set(service) <= allowed, (name, set(service) - allowed)
        assert service["image"].startswith("osmcloud-local/") and service["image"] in buildable, name
        if "build" in service:
            assert "build" in MAIN["services"][name]
            assert set(service["build"]) == {"args"} and set(service["build"]["args"]) == {"PYTHON_IMAGE"}
            assert service["build"]["args"]["PYTHON_IMAGE"].endswith(f"{CATALOG['python'].tag}}}")
        else:
            assert service.get("pull_policy") == "never", f"{name}: a missing local build must not be pulled"


def test_test_override_publishes_on_loopback_only() -> None:
    for name, service in TEST["services"].items():
        assert set(service) <= {"ports", "environment"}, name
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
    kafka_env = TEST["services"]["kafka"]["environment"]
    assert "HOST://127.0.0.1:" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert "PLAINTEXT://kafka:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"], "containers keep their listener"
