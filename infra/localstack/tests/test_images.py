"""The local image builder without a Docker engine: recipes, order, caching, and failures that
name their step (a fake `docker` on PATH stands in for the CLI)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from osmcloud_localstack import images
from osmcloud_localstack.images import CATALOG, ImageBuilder, ImageBuildError, _last_step

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of what the recipes read: infra/images, infra/kafka, infra/ferretdb and the Python sources."""
    r = tmp_path / "repo"
    for d in ("infra/images", "infra/kafka", "infra/ferretdb", "infra/localstack/src", "libs/common/src"):
        shutil.copytree(REPO / d, r / d, ignore=shutil.ignore_patterns("__pycache__"))
    for s in images.SERVICES:
        shutil.copytree(REPO / "services" / s / "src", r / "services" / s / "src",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(REPO / "services" / s / "pyproject.toml", r / "services" / s / "pyproject.toml")
    for f in ("pyproject.toml", "uv.lock", ".dockerignore", "Dockerfile", "libs/common/pyproject.toml",
              "infra/localstack/pyproject.toml"):
        shutil.copy2(REPO / f, r / f)
    return r


def builder(repo: Path, official_pullable: bool = False) -> ImageBuilder:
    b = ImageBuilder(repo=repo, log=lambda m: None)
    b.obtain_official = lambda ref: (official_pullable, "pulled" if official_pullable else "no registry")  # type: ignore[method-assign]
    b._image_id = lambda ref: "sha256:official"  # type: ignore[method-assign]
    return b


def test_every_tag_is_in_our_namespace_never_an_official_name() -> None:
    for img in CATALOG.values():
        assert img.tag.startswith("osmcloud-local/"), img
        assert img.tag != img.official


def test_a_recipe_changes_with_its_inputs_and_only_then(repo: Path) -> None:
    before = {n: builder(repo).recipe(n) for n in CATALOG}
    assert before == {n: builder(repo).recipe(n) for n in CATALOG}, "recipes must be stable"

    (repo / "infra/images/kafka/run.sh").write_text((repo / "infra/images/kafka/run.sh").read_text() + "\n# changed\n")
    after = {n: builder(repo).recipe(n) for n in CATALOG}
    assert [n for n in CATALOG if before[n] != after[n]] == ["kafka"]

    (repo / "services/files/src/osmcloud_files/domain.py").write_text("# changed\n")
    again = {n: builder(repo).recipe(n) for n in CATALOG}
    assert [n for n in CATALOG if after[n] != again[n]] == ["files"]


def test_a_changed_base_changes_everything_built_on_it(repo: Path) -> None:
    before = {n: builder(repo).recipe(n) for n in CATALOG}
    (repo / "infra/images/python/Dockerfile").write_text((repo / "infra/images/python/Dockerfile").read_text() + "\n")
    after = {n: builder(repo).recipe(n) for n in CATALOG}
    changed = {n for n in CATALOG if before[n] != after[n]}
    assert changed == {"python", "smtp-sink", *images.SERVICES}


def test_plan_puts_bases_first_and_expands_groups(repo: Path) -> None:
    assert builder(repo).plan(["testcontainers"]) == ["debian", "kafka", "ferretdb", "versitygw"]
    plan = builder(repo).plan(["files", "auth"])
    assert plan == ["debian", "python", "files", "auth"]
    # with an official Python base that can be pulled, the services do not need ours
    assert builder(repo, official_pullable=True).plan(["files"]) == ["files"]
    with pytest.raises(ImageBuildError, match="unknown image 'mongo'"):
        builder(repo).plan(["mongo"])


def test_a_second_run_builds_nothing_unchanged(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = builder(repo)
    built: list[str] = []
    labels: dict[str, str] = {}
    monkeypatch.setattr(b, "check_engine", lambda: None)
    monkeypatch.setattr(b, "label_of", lambda ref: labels.get(ref))
    monkeypatch.setattr(b, "prune_untagged", lambda: None)

    def build_one(name: str) -> None:
        built.append(name)
        labels[CATALOG[name].tag] = b.recipe(name)

    monkeypatch.setattr(b, "_build_one", build_one)
    first = b.build(["testcontainers"])
    assert built == ["debian", "kafka", "ferretdb", "versitygw"] and all(r.startswith("built") for r in first.values())
    built.clear()
    assert set(b.build(["testcontainers"]).values()) == {"cached"} and built == []
    b.build(["testcontainers"], rebuild=["kafka"])
    assert built == ["kafka"]


def _fake_docker(tmp_path: Path, script: str) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    docker = bindir / "docker"
    docker.write_text("#!/bin/sh\n" + script)
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ['PATH']}"


def test_a_failed_build_names_the_image_and_its_step(repo: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", os.environ["PATH"])  # restored after the test
    monkeypatch.setenv("OSMCLOUD_CACHE", str(tmp_path / "cache"))
    _fake_docker(tmp_path, 'echo "Step 1/3 : FROM osmcloud-local/debian:bookworm"\n'
                           'echo "Step 2/3 : RUN apt-get install -y nginx-light"\n'
                           'echo "E: Unable to locate package nginx-light"\nexit 100\n')
    b = builder(repo)
    with pytest.raises(ImageBuildError) as err:
        b._build_one("nginx")
    msg = str(err.value)
    assert "image nginx (osmcloud-local/nginx:1.22) failed at Step 2/3 : RUN apt-get install -y nginx-light" in msg
    assert "Unable to locate package" in msg


def test_no_engine_is_reported_with_where_it_was_looked_for(repo: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", os.environ["PATH"])
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    _fake_docker(tmp_path,
                 'echo "Cannot connect to the Docker daemon at unix:///nonexistent/docker.sock" >&2\nexit 1\n')
    with pytest.raises(ImageBuildError,
                       match="no Docker engine answers at unix:///nonexistent/docker.sock.*dockerd.sh start"):
        builder(repo).build(["kafka"])


def test_last_step_of_a_log(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("Sending build context\nStep 1/2 : FROM a\n ---> 123\nStep 2/2 : RUN false\nerror\n")
    assert _last_step(log) == "Step 2/2 : RUN false"
    log.write_text("unable to prepare context\n")
    assert _last_step(log) == "before the first step"


def test_skip_pullable_builds_only_what_has_no_official_image(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = builder(repo)
    monkeypatch.setattr(b, "check_engine", lambda: None)
    monkeypatch.setattr(b, "label_of", lambda ref: None)
    monkeypatch.setattr(b, "prune_untagged", lambda: None)
    monkeypatch.setattr(b, "obtain_official",
                        lambda ref: (ref == "mongo:7", "present" if ref == "mongo:7" else "no registry"))
    built: list[str] = []
    monkeypatch.setattr(b, "_build_one", built.append)
    b.build(["testcontainers"], skip_pullable=True)
    assert built == ["debian", "kafka", "versitygw"]
