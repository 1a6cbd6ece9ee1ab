"""Container images built on this machine, with no image registry.

    python -m osmcloud_localstack.images build [NAME ...] [--rebuild NAME ...]
    python -m osmcloud_localstack.images list

NAME: debian python kafka ferretdb versitygw nginx smtp-sink auth files trash billing, or the
groups ``testcontainers`` (what the test mode needs) and ``compose`` (everything the compose
override uses); default: all. Images are built in dependency order with the Docker engine
DOCKER_HOST names (``bash infra/docker/dockerd.sh start`` starts ours).

  debian     osmcloud-local/debian:bookworm       mmdebstrap from Debian's archive, ``docker import``
  python     osmcloud-local/python:3.11-bookworm  Debian's python3 (3.11) + pip
  kafka      osmcloud-local/kafka:4.1.1           the Maven-resolved jars bootstrap caches + Debian's JRE 17
  ferretdb   osmcloud-local/ferretdb:1.24.2       infra/ferretdb, static Go build
  versitygw  osmcloud-local/versitygw:1.8.0       static Go build from the module proxy
  nginx      osmcloud-local/nginx:1.22            Debian's nginx-light, official-image-like templates
  smtp-sink  osmcloud-local/smtp-sink:latest      our SMTP sink (osmcloud_localstack.smtp_sink)
  auth ...   osmcloud-local/<service>:latest      the repo Dockerfile's targets

Names are in our own namespace, never an official image's. Every image carries the label
``org.osmcloud.recipe``: a hash of everything it is built from (its Dockerfile and files, the
jars or Go sources, its base image's recipe). An image whose tag already carries the current
hash is not rebuilt, so a second run builds nothing that did not change. The Debian root
file system is also kept as a tarball under CACHE/images (keyed by its recipe), so a fresh
data root imports it instead of running mmdebstrap again.

The python image also trusts the machine's own CA certificates (/usr/local/share/ca-certificates,
e.g. a TLS-inspecting proxy's), so pip and uv in the service builds reach PyPI as the host does.

Builds use the classic builder (Debian's docker.io has no buildx) on the host network (the
engine has no bridge; apt and PyPI are reached from the host). A failed build names the image
and its step (``Step 3/7 : RUN ...``) and shows the end of its log (CACHE/logs/image-NAME.log).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from . import paths

NAMESPACE = "osmcloud-local"
RECIPE_LABEL = "org.osmcloud.recipe"
SERVICES = ("auth", "files", "trash", "billing")

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# minbase: essential packages + apt; documentation and translations left out (Debian's own
# slim images do the same), copyright files kept.
MMDEBSTRAP_OPTIONS = (
    "--variant=minbase",
    "--include=ca-certificates",
    "--aptopt=Acquire::Retries \"3\"",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
)


@dataclass(frozen=True)
class Image:
    name: str
    tag: str
    base: str | None  # the image (of ours) it is built on
    official: str | None  # the official image it stands in for where that cannot be pulled
    summary: str


CATALOG: dict[str, Image] = {
    i.name: i
    for i in (
        Image("debian", f"{NAMESPACE}/debian:{DEBIAN_SUITE}", None, None, "Debian 12 minbase from mmdebstrap"),
        Image("python", f"{NAMESPACE}/python:3.11-{DEBIAN_SUITE}", "debian", "python:3.11-slim",
              "Debian's Python 3.11 + pip"),
        Image("kafka", f"{NAMESPACE}/kafka:{paths.KAFKA_VERSION}", "debian", f"apache/kafka:{paths.KAFKA_VERSION}",
              "Kafka jars + Debian JRE 17"),
        Image("ferretdb", f"{NAMESPACE}/ferretdb:{paths.FERRETDB_VERSION}", "debian", "mongo:7",
              "FerretDB (SQLite), MongoDB protocol"),
        Image("versitygw", f"{NAMESPACE}/versitygw:{paths.VERSITYGW_VERSION}", "debian",
              f"versity/versitygw:v{paths.VERSITYGW_VERSION}", "versitygw S3 server"),
        Image("nginx", f"{NAMESPACE}/nginx:1.22", "debian", "nginx:1.28-alpine", "Debian nginx-light (gateway)"),
        Image("smtp-sink", f"{NAMESPACE}/smtp-sink:latest", "python", None, "our SMTP sink with its read API"),
        *(Image(s, f"{NAMESPACE}/{s}:latest", "python", None, f"the {s} service (repo Dockerfile)") for s in SERVICES),
    )
}
GROUPS = {
    "testcontainers": ("kafka", "ferretdb", "versitygw"),
    "compose": ("kafka", "ferretdb", "versitygw", "nginx", "smtp-sink", *SERVICES),
}
# the Dockerfile images of infra/images/<name>/ (context: that directory plus what _extra_context adds)
LOCAL_DOCKERFILES = ("python", "kafka", "ferretdb", "versitygw", "nginx")


# The machine's own CA certificates (Debian's place for local additions). Image builds fetch from
# PyPI over HTTPS; where the machine reaches it through a TLS-inspecting proxy, the python image
# must trust the same CAs as the machine (see infra/images/python/Dockerfile).
LOCAL_CA_DIR = Path(os.environ.get("OSMCLOUD_LOCAL_CA_DIR", "/usr/local/share/ca-certificates"))


def local_ca_certificates() -> list[Path]:
    try:
        return sorted(p for p in LOCAL_CA_DIR.rglob("*.crt") if p.is_file())
    except OSError:
        return []


class ImageBuildError(RuntimeError):
    """An image could not be built; the message names the image and the step."""


# ---- small helpers ----------------------------------------------------------------------------


def _hash_files(h: hashlib._Hash, root: Path, files: Iterable[Path]) -> None:
    for f in sorted(files):
        h.update(str(f.relative_to(root)).encode() + b"\0")
        h.update(f.read_bytes() + b"\0")


def _tree(root: Path) -> list[Path]:
    """Every file under root, without Python caches."""
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    ]


def _last_step(log: Path) -> str:
    """The last "Step N/M : ..." line of a classic-builder log (the step that failed)."""
    step = "before the first step"
    try:
        for line in log.read_text(errors="replace").splitlines():
            if re.match(r"^Step \d+/\d+ : ", line):
                step = line.strip()
    except OSError:
        pass
    return step


def _tail(log: Path, n: int = 15) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return "  (no log)"
    return "\n".join(f"  | {line}" for line in lines)


def docker_env() -> dict[str, str]:
    # classic builder: the CLI must not look for buildx, which Debian's docker.io does not ship
    return {**os.environ, "DOCKER_BUILDKIT": "0"}


def go_binary() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None)
    if not go:
        raise ImageBuildError("go not found (needed for the static FerretDB and versitygw builds); "
                              "run bash infra/bootstrap.sh")
    return go


# ---- the builder ------------------------------------------------------------------------------


class ImageBuilder:
    def __init__(self, repo: Path | None = None, log: Callable[[str], None] | None = None) -> None:
        self.repo = repo or paths.repo_root()
        self.cache = paths.cache_dir()
        self.logs = self.cache / "logs"
        self.say = log or (lambda msg: print(f"[images] {msg}", flush=True))
        self._recipes: dict[str, str] = {}
        self._python_base: tuple[str, str] | None = None

    # ---- docker -----------------------------------------------------------------------------
    def _docker(self, *args: str, check: bool = False, timeout: float | None = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], capture_output=True, text=True, env=docker_env(), check=check,
                              timeout=timeout)

    def check_engine(self) -> None:
        """ImageBuildError naming DOCKER_HOST when no engine answers."""
        try:
            res = self._docker("version", "--format", "{{.Server.Version}}", timeout=30)
        except FileNotFoundError as exc:
            raise ImageBuildError(
                "the docker CLI is not installed; bash infra/docker/dockerd.sh start installs it") from exc
        if res.returncode != 0:
            where = os.environ.get("DOCKER_HOST", "the default socket")
            raise ImageBuildError(
                f"no Docker engine answers at {where}: {(res.stderr.strip().splitlines() or ['no answer'])[-1]}; "
                "start ours with `bash infra/docker/dockerd.sh start` and export DOCKER_HOST as it prints"
            )

    def label_of(self, ref: str) -> str | None:
        """The recipe label of a local image, None when the image is not here."""
        res = self._docker("image", "inspect", "--format", f'{{{{index .Config.Labels "{RECIPE_LABEL}"}}}}', ref)
        return res.stdout.strip() if res.returncode == 0 else None

    def present(self, ref: str) -> bool:
        return self._docker("image", "inspect", "--format", "{{.Id}}", ref).returncode == 0

    def obtain_official(self, ref: str) -> tuple[bool, str]:
        """(True, how) when the official image is here or could be pulled, else (False, why not)."""
        if self.present(ref):
            return True, "present"
        try:
            res = self._docker("pull", "--quiet", ref, timeout=600)
        except subprocess.TimeoutExpired:
            return False, "pull timed out after 600 s"
        if res.returncode == 0:
            return True, "pulled"
        why = (res.stderr.strip().splitlines() or ["pull failed"])[-1].removeprefix("Error response from daemon: ")
        return False, f"pull failed: {why[:200]}"

    # ---- recipes (content hashes) ---------------------------------------------------------------
    def python_base(self) -> tuple[str, str]:
        """(image, why) for the service images' PYTHON_IMAGE: the official one if it can be had."""
        if self._python_base is None:
            official = CATALOG["python"].official
            assert official
            ok, how = self.obtain_official(official)
            self._python_base = ((official, f"official, {how}") if ok else
                                 (CATALOG["python"].tag, f"local build; {official}: {how}"))
        return self._python_base

    def recipe(self, name: str) -> str:
        if name in self._recipes:
            return self._recipes[name]
        img = CATALOG[name]
        h = hashlib.sha256(f"osmcloud-image-v1 {name} {img.tag}\n".encode())
        if name == "debian":
            h.update(repr((DEBIAN_SUITE, DEBIAN_MIRRORS, MMDEBSTRAP_OPTIONS)).encode())
        elif name in LOCAL_DOCKERFILES:
            d = self.repo / "infra" / "images" / name
            _hash_files(h, d, _tree(d))
            if name == "kafka":
                h.update((self.repo / "infra" / "kafka" / "pom.xml").read_bytes())
            elif name == "ferretdb":
                _hash_files(h, self.repo / "infra" / "ferretdb", paths.ferretdb_sources(self.repo))
            elif name == "versitygw":
                h.update(paths.VERSITYGW_VERSION.encode())
            elif name == "python":
                _hash_files(h, LOCAL_CA_DIR, local_ca_certificates())
        else:  # smtp-sink and the services: built from the repository root
            for f in self._repo_inputs(name):
                h.update(str(f.relative_to(self.repo)).encode() + b"\0" + f.read_bytes() + b"\0")
        if name in SERVICES or name == "smtp-sink":
            base, _ = self.python_base()
            base_id = self._image_id(base) if base != CATALOG["python"].tag else self.recipe("python")
            h.update(f"base {base} {base_id}".encode())
        elif img.base:
            h.update(f"base {self.recipe(img.base)}".encode())
        self._recipes[name] = h.hexdigest()[:16]
        return self._recipes[name]

    def _image_id(self, ref: str) -> str:
        res = self._docker("image", "inspect", "--format", "{{.Id}}", ref)
        return res.stdout.strip()

    def _repo_inputs(self, name: str) -> list[Path]:
        r = self.repo
        members = [r / "libs/common", *(r / "services" / s for s in SERVICES), r / "infra/localstack"]
        files = [r / "pyproject.toml", r / "uv.lock", r / ".dockerignore", *(m / "pyproject.toml" for m in members)]
        if name == "smtp-sink":
            files += [r / "infra/images/smtp-sink/Dockerfile", *_tree(r / "infra/localstack/src")]
        else:
            files += [r / "Dockerfile", *_tree(r / "libs/common/src"), *_tree(r / "services" / name / "src")]
        return sorted(files)

    def up_to_date(self, name: str) -> bool:
        return self.label_of(CATALOG[name].tag) == self.recipe(name)

    # ---- building ---------------------------------------------------------------------------------
    def build(self, names: Iterable[str], rebuild: Iterable[str] = (), skip_pullable: bool = False) -> dict[str, str]:
        """Build what is missing or changed (and its bases); returns name -> "cached" / "built in N s".
        skip_pullable: leave out images whose official counterpart is here or can be pulled."""
        self.check_engine()
        names = list(names)
        if skip_pullable:
            keep = []
            for n in (n for n in CATALOG if n in names_of(names)):
                official = CATALOG[n].official
                ok, how = self.obtain_official(official) if official else (False, "")
                if ok:
                    self.say(f"{n:10} not needed: the official {official} is here ({how})")
                else:
                    keep.append(n)
            names = keep
        order = self.plan(names)
        force = set(rebuild)
        results: dict[str, str] = {}
        t0 = time.monotonic()
        for name in order:
            img = CATALOG[name]
            if name not in force and self.up_to_date(name):
                results[name] = "cached"
                self.say(f"{name:10} {img.tag}: cached (recipe {self.recipe(name)})")
                continue
            self.say(f"{name:10} {img.tag}: building (recipe {self.recipe(name)}) ...")
            t = time.monotonic()
            self._build_one(name)
            results[name] = f"built in {time.monotonic() - t:.0f} s"
            self.say(f"{name:10} {img.tag}: {results[name]}")
        if any(r != "cached" for r in results.values()):
            self.prune_untagged()
        self.say(f"done in {time.monotonic() - t0:.0f} s: {sum(r == 'cached' for r in results.values())} cached, "
                 f"{sum(r != 'cached' for r in results.values())} built")
        return results

    def prune_untagged(self) -> None:
        """A rebuilt tag leaves its previous image untagged; the engine is ours, so drop those."""
        self._docker("image", "prune", "--force", timeout=300)

    def plan(self, names: Iterable[str]) -> list[str]:
        """The images to look at, bases first."""
        wanted: list[str] = []
        for n in names:
            for m in GROUPS.get(n, (n,)):
                if m not in CATALOG:
                    raise ImageBuildError(f"unknown image {m!r}; known: {', '.join(CATALOG)} or {', '.join(GROUPS)}")
                wanted.append(m)
        order: list[str] = []

        def add(name: str) -> None:
            if name in order:
                return
            base = CATALOG[name].base
            if name in SERVICES or name == "smtp-sink":
                base = "python" if self.python_base()[0] == CATALOG["python"].tag else None
            if base:
                add(base)
            order.append(name)

        for n in wanted:
            add(n)
        return order

    def _build_one(self, name: str) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        if name == "debian":
            self._build_debian()
            return
        log = self.logs / f"image-{name}.log"
        img = CATALOG[name]
        labels = [f"{RECIPE_LABEL}={self.recipe(name)}", f"org.opencontainers.image.title={img.tag}",
                  f"org.opencontainers.image.description={img.summary}"]
        if name in LOCAL_DOCKERFILES:
            with tempfile.TemporaryDirectory(prefix=f"osmcloud-image-{name}-") as tmp:
                ctx = Path(tmp)
                shutil.copytree(self.repo / "infra" / "images" / name, ctx, dirs_exist_ok=True)
                self._extra_context(name, ctx, log)
                base = CATALOG[img.base].tag if img.base else ""
                self._docker_build(name, log, ctx, ctx / "Dockerfile", labels, {"BASE_IMAGE": base})
        elif name == "smtp-sink":
            self._docker_build(name, log, self.repo, self.repo / "infra/images/smtp-sink/Dockerfile", labels,
                               {"PYTHON_IMAGE": self.python_base()[0]})
        else:
            self._docker_build(name, log, self.repo, self.repo / "Dockerfile", labels,
                               {"PYTHON_IMAGE": self.python_base()[0]}, target=name)

    def _docker_build(self, name: str, log: Path, ctx: Path, dockerfile: Path, labels: list[str],
                      args: dict[str, str], target: str | None = None) -> None:
        argv = ["docker", "build", "--network", "host", "--force-rm", "-t", CATALOG[name].tag, "-f", str(dockerfile)]
        for label in labels:
            argv += ["--label", label]
        for k, v in args.items():
            argv += ["--build-arg", f"{k}={v}"]
        if target:
            argv += ["--target", target]
        argv.append(str(ctx))
        with open(log, "w") as out:
            out.write("$ " + " ".join(argv) + "\n")
            out.flush()
            rc = subprocess.call(argv, stdout=out, stderr=subprocess.STDOUT, env=docker_env())
        if rc != 0:
            raise ImageBuildError(
                f"image {name} ({CATALOG[name].tag}) failed at {_last_step(log)} (docker build exit {rc}); "
                f"log {log}:\n{_tail(log)}"
            )

    def _extra_context(self, name: str, ctx: Path, log: Path) -> None:
        """Files a Dockerfile image copies that are not in infra/images/<name>/."""
        if name == "kafka":
            lib = paths.kafka_lib_dir()
            shutil.copytree(lib, ctx / "libs")
        elif name == "python":
            (ctx / "local-ca").mkdir()
            certs = local_ca_certificates()
            for cert in certs:
                shutil.copy2(cert, ctx / "local-ca" / cert.name)
            if certs:
                cert_names = ", ".join(c.name for c in certs)
                self.say(f"  adding this machine's CA certificates from {LOCAL_CA_DIR}: {cert_names}")
        elif name == "ferretdb":
            shutil.copy2(self._static_ferretdb(log), ctx / "osmcloud-ferretdb")
        elif name == "versitygw":
            shutil.copy2(self._static_versitygw(log), ctx / "versitygw")

    def _go(self, what: str, log: Path, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        with open(log, "w") as out:
            out.write(f"$ {' '.join(argv)}\n")
            out.flush()
            rc = subprocess.call(argv, cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
        if rc != 0:
            raise ImageBuildError(f"{what} failed at step 'go build' (exit {rc}); log {log}:\n{_tail(log)}")

    def _static_ferretdb(self, log: Path) -> Path:
        src = self.repo / "infra" / "ferretdb"
        out = self.cache / "bin" / f"osmcloud-ferretdb-static-{paths.ferretdb_key(self.repo)}"
        if not out.exists():
            self.say(f"  go build infra/ferretdb (CGO_ENABLED=0) -> {out}")
            tmp = out.with_suffix(f".tmp{os.getpid()}")
            self._go("static FerretDB build", log, ["bash", str(src / "build.sh"), str(tmp)], src,
                     {"CGO_ENABLED": "0", "GO": str(go_binary())})
            tmp.rename(out)
        return out

    def _static_versitygw(self, log: Path) -> Path:
        v = paths.VERSITYGW_VERSION
        d = self.cache / f"versitygw-{v}-static"
        out = d / "versitygw"
        if not out.exists():
            self.say(f"  go install versitygw@v{v} (CGO_ENABLED=0) -> {out}")
            d.mkdir(parents=True, exist_ok=True)
            self._go("static versitygw build", log,
                     [go_binary(), "install", "-trimpath", "-ldflags", f"-X=main.Version=v{v}",
                      f"github.com/versity/versitygw/cmd/versitygw@v{v}"],
                     self.cache, {"CGO_ENABLED": "0", "GOBIN": str(d)})
        return out

    def _build_debian(self) -> None:
        img = CATALOG["debian"]
        recipe = self.recipe("debian")
        tar_dir = self.cache / "images"
        tar = tar_dir / f"debian-{DEBIAN_SUITE}-{recipe}.tar"
        log = self.logs / "image-debian.log"
        if tar.exists():
            self.say(f"  root file system cached: {tar}")
        else:
            self._ensure_mmdebstrap(log)
            tar_dir.mkdir(parents=True, exist_ok=True)
            tmp = tar.with_suffix(f".tmp{os.getpid()}.tar")
            argv = ["mmdebstrap", "--mode=root", *MMDEBSTRAP_OPTIONS, DEBIAN_SUITE, str(tmp), *DEBIAN_MIRRORS]
            if os.geteuid() != 0:
                argv[1] = "--mode=unshare"
            self.say(f"  mmdebstrap {DEBIAN_SUITE} (minbase) -> {tar}")
            with open(log, "w") as out:
                out.write("$ " + " ".join(argv) + "\n")
                out.flush()
                rc = subprocess.call(argv, stdout=out, stderr=subprocess.STDOUT)
            if rc != 0:
                tmp.unlink(missing_ok=True)
                raise ImageBuildError(f"image debian failed at step 'mmdebstrap' (exit {rc}); log {log}:\n{_tail(log)}")
            tmp.rename(tar)
        argv = ["docker", "import",
                "--change", f"LABEL {RECIPE_LABEL}={recipe}",
                "--change", f"LABEL org.opencontainers.image.title={img.tag}",
                "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--change", 'CMD ["/bin/bash"]',
                "--message", f"mmdebstrap {DEBIAN_SUITE} minbase (osmcloud recipe {recipe})",
                str(tar), img.tag]
        res = subprocess.run(argv, capture_output=True, text=True, env=docker_env())
        if res.returncode != 0:
            raise ImageBuildError(f"image debian failed at step 'docker import' of {tar}: {res.stderr.strip()[-500:]}")

    def _ensure_mmdebstrap(self, log: Path) -> None:
        if shutil.which("mmdebstrap"):
            return
        if not shutil.which("apt-get"):
            raise ImageBuildError("image debian failed at step 'install mmdebstrap': no mmdebstrap and no apt-get; "
                                  "install mmdebstrap")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        self.say("  apt-get install mmdebstrap")
        with open(log, "w") as out:
            rc = subprocess.call([*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
                                  "--no-install-recommends", "mmdebstrap"], stdout=out, stderr=subprocess.STDOUT)
        if rc != 0 or not shutil.which("mmdebstrap"):
            raise ImageBuildError(f"image debian failed at step 'apt-get install mmdebstrap'; log {log}:\n{_tail(log)}")

    # ---- listing ----------------------------------------------------------------------------------
    def rows(self) -> list[dict[str, str]]:
        self.check_engine()
        out = []
        for name, img in CATALOG.items():
            label = self.label_of(img.tag)
            state = "missing" if label is None else ("up to date" if label == self.recipe(name) else "out of date")
            out.append({"name": name, "tag": img.tag, "state": state, "recipe": self.recipe(name),
                        "stands in for": img.official or "-"})
        return out


def names_of(names: Iterable[str]) -> set[str]:
    """Image names, with groups expanded."""
    return {m for n in names for m in GROUPS.get(n, (n,))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m osmcloud_localstack.images", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build what is missing or changed")
    b.add_argument("names", nargs="*", default=["all"],
                   help=f"images or groups: {', '.join([*CATALOG, *GROUPS, 'all'])}")
    b.add_argument("--rebuild", action="append", default=[], metavar="NAME",
                   help="build NAME even if its recipe is unchanged")
    b.add_argument("--skip-pullable", action="store_true",
                   help="leave out images whose official counterpart is here or can be pulled "
                        "(testcontainers prefers those)")
    sub.add_parser("list", help="every image, its tag, and whether it is up to date")
    args = parser.parse_args(argv)
    builder = ImageBuilder()
    try:
        if args.cmd == "build":
            names = list(CATALOG) if args.names in ([], ["all"]) else args.names
            builder.build(names, rebuild=args.rebuild, skip_pullable=args.skip_pullable)
        else:
            for r in builder.rows():
                print(f"{r['name']:10} {r['tag']:38} {r['state']:12} {r['recipe']}  "
                      f"(stands in for {r['stands in for']})")
    except ImageBuildError as exc:
        print(f"[images] FAILED: {exc}", file=sys.stderr)
        return 1
    except paths.ToolMissing as exc:
        print(f"[images] FAILED: {exc}", file=sys.stderr)
        return 1
    except (FileNotFoundError, subprocess.SubprocessError) as exc:
        print(f"[images] FAILED: {exc} (is the docker CLI installed and DOCKER_HOST set? "
              "bash infra/docker/dockerd.sh start)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
