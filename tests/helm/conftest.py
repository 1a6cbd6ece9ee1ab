"""Fixtures for the Helm chart checks: Helm 4 (built by infra/bootstrap.sh from the Go module
proxy) run on deploy/helm/osmcloud with its own empty config, cache and data directories."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from osmcloud_localstack.paths import ToolMissing, helm_binary

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "osmcloud"
PRODUCTION_VALUES = ROOT / "deploy" / "helm" / "examples" / "production-values.yaml"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def helm(tmp_path_factory) -> callable:
    """helm(*args) -> Run: Helm with nothing of the user's (no repositories, no plugins)."""
    try:
        exe = helm_binary()
    except ToolMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    home = tmp_path_factory.mktemp("helm-home")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "HELM_CONFIG_HOME": str(home / "config"),
           "HELM_CACHE_HOME": str(home / "cache"), "HELM_DATA_HOME": str(home / "data")}

    def run(*args: str) -> Run:
        proc = subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=120)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture(scope="session")
def render(helm):
    """render(*value_files, set=[...]) -> list of rendered objects (fails the test on an error)."""

    def run(*value_files: Path, sets: tuple[str, ...] = ()) -> list[dict]:
        args = ["template", "osmcloud", str(CHART), "--namespace", "osmcloud"]
        for f in value_files:
            args += ["-f", str(f)]
        for s in sets:
            args += ["--set", s]
        result = helm(*args)
        assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    return run


@pytest.fixture(scope="session")
def production(render) -> list[dict]:
    """The chart rendered with the scaled, production-like example values."""
    return render(PRODUCTION_VALUES)
