"""Fixtures for the docker-compose checks: the composecheck tool, built once and cached.

composecheck (infra/tools/composecheck) loads docker-compose.yml with compose-go, the library
`docker compose` itself is built on, and lints the Dockerfile with BuildKit's front end, so
the file is checked the way Docker would read it although no Docker engine runs here. It is
built with the machine's Go into ${OSMCLOUD_CACHE:-~/.cache/osmcloud}/bin/, under a name that
hashes its sources and the Go version: reruns reuse it, an edit rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL_DIR = ROOT / "infra" / "tools" / "composecheck"

# Variables docker-compose.yml interpolates: runs start from a clean environment so that a
# developer's shell or .env cannot change what is checked.
CLEAN_ENV_KEYS = ("PATH", "HOME", "GOPATH", "GOMODCACHE", "GOCACHE", "GOPROXY", "GOFLAGS",
                  "GOTOOLCHAIN", "GONOSUMDB", "GOPRIVATE", "GOSUMDB", "TMPDIR")


# docker-compose.yml has no default secrets (it refuses to start without these): checks run
# with stand-ins, as a deployment would with its .env
TEST_SECRETS = {"GATEWAY_SECRET": "test-gateway-secret-0123456789abcdef",
                "S3_ACCESS_KEY": "test-access-key", "S3_SECRET_KEY": "test-s3-secret-0123456789abcdef"}


def _cache_dir() -> Path:
    base = os.environ.get("OSMCLOUD_CACHE") or str(Path.home() / ".cache" / "osmcloud")
    return Path(base) / "bin"


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        pytest.fail(
            "Go is not on PATH. tests/compose builds infra/tools/composecheck (compose-go and "
            "BuildKit, from the Go module proxy) to validate docker-compose.yml and the Dockerfile "
            "as Docker reads them. Install Go 1.24 or newer (the same Go the local stack needs) "
            "and run the tests again.",
            pytrace=False,
        )
    return go


def _go_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in CLEAN_ENV_KEYS}
    env["GOFLAGS"] = "-mod=readonly -buildvcs=false"
    return env


def _build(go: str) -> Path:
    version = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True,
                             env=_go_env(), check=True).stdout.strip()
    digest = hashlib.sha256(version.encode())
    for path in sorted(TOOL_DIR.iterdir()):
        if path.name in ("go.mod", "go.sum") or path.suffix == ".go":
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    key = digest.hexdigest()[:16]
    bin_dir = _cache_dir()
    exe = bin_dir / f"composecheck-{key}"
    if exe.is_file() and os.access(exe, os.X_OK):
        return exe
    bin_dir.mkdir(parents=True, exist_ok=True)
    tmp = bin_dir / f".composecheck-{key}.{os.getpid()}"
    cmd = [go, "build", "-trimpath", "-o", str(tmp), "."]
    try:
        proc = subprocess.run(cmd, cwd=TOOL_DIR, capture_output=True, text=True,
                              env=_go_env(), timeout=1800)
    except subprocess.TimeoutExpired:
        pytest.fail(f"building composecheck timed out: {' '.join(cmd)} in {TOOL_DIR}", pytrace=False)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        pytest.fail(
            f"building composecheck failed: `{' '.join(cmd)}` in {TOOL_DIR} exited "
            f"{proc.returncode}.\nThe first build downloads compose-go and BuildKit from the Go "
            f"module proxy; check that it is reachable and run the tests again.\n{proc.stderr}",
            pytrace=False,
        )
    os.replace(tmp, exe)
    for old in bin_dir.glob("composecheck-*"):  # earlier builds of other sources
        if old != exe:
            old.unlink(missing_ok=True)
    return exe


@pytest.fixture(scope="session")
def composecheck() -> Path:
    """Path of the composecheck binary (built on first use)."""
    return _build(_go())


@pytest.fixture(scope="session")
def run_check(composecheck: Path):
    """run_check(project_dir, env=None, secrets=True) -> (exit status, report or None, problems).
    With `secrets`, the variables docker-compose.yml requires are set to TEST_SECRETS first."""

    def run(project_dir: Path, env: dict[str, str] | None = None, secrets: bool = True):
        return run_composecheck(composecheck, project_dir, {**(TEST_SECRETS if secrets else {}), **(env or {})})

    return run


def run_composecheck(exe: Path, project_dir: Path, env: dict[str, str] | None = None):
    """Run composecheck on PROJECT_DIR/docker-compose.yml with only ENV as the environment.

    Returns (exit status, report or None, problems: list of stderr lines)."""
    run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    run_env.update(env or {})
    proc = subprocess.run([str(exe), "-project-directory", str(project_dir)], capture_output=True,
                          text=True, env=run_env, timeout=120)
    report = json.loads(proc.stdout) if proc.stdout.strip() else None
    problems = [line for line in proc.stderr.splitlines() if line.strip()]
    return proc.returncode, report, problems


@pytest.fixture(scope="session")
def checked(run_check) -> dict:
    """The repository's compose project as compose-go resolved it, with default variables.

    Fails when compose-go or BuildKit reject anything (the validation itself)."""
    rc, report, problems = run_check(ROOT)
    assert rc == 0 and not problems, "composecheck rejected the compose project:\n" + "\n".join(problems)
    assert report is not None
    return report


@pytest.fixture(scope="session")
def go_module_dir(composecheck: Path):
    """Returns a function giving the local directory of a module composecheck depends on."""

    def module_dir(path: str) -> Path:
        proc = subprocess.run([_go(), "list", "-m", "-f", "{{.Dir}}", path], cwd=TOOL_DIR,
                              capture_output=True, text=True, env=_go_env(), check=True)
        return Path(proc.stdout.strip())

    return module_dir
