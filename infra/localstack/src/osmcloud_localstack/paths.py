"""Where things are: the repository, the bootstrap cache, and the programs bootstrap installed.

Nothing here installs anything; a missing program raises ``ToolMissing`` telling the user to run
``bash infra/bootstrap.sh``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

KAFKA_VERSION = "4.1.1"
FERRETDB_VERSION = "1.24.2"
VERSITYGW_VERSION = "1.8.0"
HELM_VERSION = "4.3.2"
# Prometheus 3.16's Go module version (github.com/prometheus/prometheus v0.316.0)
PROMETHEUS_MODULE_VERSION = "0.316.0"


class ToolMissing(RuntimeError):
    pass


def repo_root() -> Path:
    """The osmcloud checkout (OSMCLOUD_REPO, else found from this file: infra/localstack/src/...)."""
    env = os.environ.get("OSMCLOUD_REPO")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "gateway" / "default.conf.template").exists() and (parent / "infra" / "bootstrap.sh").exists():
            return parent
    cwd = Path.cwd()
    for parent in (cwd, *cwd.parents):
        if (parent / "gateway" / "default.conf.template").exists() and (parent / "infra" / "bootstrap.sh").exists():
            return parent
    raise ToolMissing("cannot find the osmcloud repository; set OSMCLOUD_REPO")


def cache_dir() -> Path:
    env = os.environ.get("OSMCLOUD_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "osmcloud"


def _hint() -> str:
    return "run `bash infra/bootstrap.sh` (or `make up` / `make test`, which run it) first"


def kafka_lib_dir() -> Path:
    lib = cache_dir() / f"kafka-{KAFKA_VERSION}" / "lib"
    if not (lib / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        raise ToolMissing(f"Kafka {KAFKA_VERSION} jars not found in {lib}; {_hint()}")
    return lib


def kafka_log4j_config(repo: Path) -> Path:
    return repo / "infra" / "kafka" / "log4j2.properties"


def ferretdb_sources(repo: Path) -> list[Path]:
    """What the FerretDB program is built from, in the order bootstrap.sh hashes it:
    go.mod, go.sum, the *.go files sorted, build.sh, the patches sorted by name, then the
    added *.go files sorted by path."""
    src = repo / "infra" / "ferretdb"
    return [src / "go.mod", src / "go.sum", *sorted(src.glob("*.go"), key=lambda p: p.name), src / "build.sh",
            *sorted(src.glob("patches/*.patch"), key=lambda p: p.name.encode()),
            *sorted(src.glob("_added/**/*.go"), key=lambda p: p.relative_to(src).as_posix().encode())]


def ferretdb_key(repo: Path) -> str:
    """The hash of ferretdb_sources that names a built binary (bootstrap.sh's FERRET_HASH)."""
    h = hashlib.sha256()
    for source in ferretdb_sources(repo):
        h.update(source.read_bytes())
    return h.hexdigest()[:12]


def ferretdb_binary(repo: Path) -> Path:
    """The binary bootstrap built from infra/ferretdb (named after a hash of its sources)."""
    binary = cache_dir() / "bin" / f"osmcloud-ferretdb-{ferretdb_key(repo)}"
    if not os.access(binary, os.X_OK):
        raise ToolMissing(
            f"FerretDB {FERRETDB_VERSION} binary {binary} not built (or infra/ferretdb changed); {_hint()}")
    return binary


def versitygw_binary() -> Path:
    binary = cache_dir() / f"versitygw-{VERSITYGW_VERSION}" / "versitygw"
    if not os.access(binary, os.X_OK):
        raise ToolMissing(f"versitygw {VERSITYGW_VERSION} not found at {binary}; {_hint()}")
    return binary


def web_dist_dir(repo: Path) -> Path:
    """Where bootstrap builds the web app (clients/web: npm ci, vite build)."""
    return repo / "clients" / "web" / "dist"


def web_dist(repo: Path) -> Path:
    """The built web app the gateway serves; ToolMissing when it was not built."""
    dist = web_dist_dir(repo)
    if not (dist / "index.html").is_file():
        raise ToolMissing(f"the web app is not built ({dist / 'index.html'} missing); {_hint()}")
    return dist


def helm_binary() -> Path:
    binary = cache_dir() / f"helm-{HELM_VERSION}" / "helm"
    if not os.access(binary, os.X_OK):
        raise ToolMissing(f"helm {HELM_VERSION} not found at {binary}; {_hint()}")
    return binary


def prometheus_binary(name: str = "prometheus") -> Path:
    """prometheus or promtool, built by bootstrap from the Go module proxy."""
    binary = cache_dir() / f"prometheus-{PROMETHEUS_MODULE_VERSION}" / name
    if not os.access(binary, os.X_OK):
        raise ToolMissing(f"{name} ({PROMETHEUS_MODULE_VERSION}) not found at {binary}; {_hint()}")
    return binary


def java_binary() -> str:
    java = shutil.which("java")
    if not java:
        raise ToolMissing(f"java not found on PATH; {_hint()}")
    return java


def nginx_binary() -> str:
    if os.access("/usr/sbin/nginx", os.X_OK):
        return "/usr/sbin/nginx"
    nginx = shutil.which("nginx")
    if not nginx:
        raise ToolMissing(f"nginx not found; {_hint()}")
    return nginx


def venv_python(repo: Path) -> str:
    """The Python of the workspace venv: this one when we run inside it, else REPO/.venv/bin/python."""
    venv = repo / ".venv"
    try:
        if Path(sys.prefix).resolve() == venv.resolve():
            return sys.executable
    except OSError:
        pass
    py = venv / "bin" / "python"
    if not os.access(py, os.X_OK):
        raise ToolMissing(f"{py} not found; {_hint()}")
    return str(py)


def service_available(repo: Path, name: str) -> bool:
    """True when services/<name> has a runnable package (python -m osmcloud_<name>)."""
    return (repo / "services" / name / "src" / f"osmcloud_{name}" / "__main__.py").exists()
