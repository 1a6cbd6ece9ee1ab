"""Our FerretDB build (infra/ferretdb): the patch set applies to the pinned release or the build
stops naming the patch; FerretDB's own Go tests of every package the patch set touches pass, with
ours (the one-pass sjson decoder must give exactly what FerretDB's own decoder gives, or refuse,
on generated and on corrupted documents); and the binary's cache key covers every patch."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from osmcloud_localstack import paths

REPO = Path(__file__).resolve().parents[3]
SRC = REPO / "infra" / "ferretdb"
BUILD = SRC / "build.sh"


def _need_go() -> None:
    if shutil.which("go") is None:
        pytest.fail("Go is not on PATH: infra/bootstrap.sh installs the Go the local stack needs", pytrace=False)


def _patched_packages() -> set[str]:
    touched = {f for p in SRC.glob("patches/*.patch") for f in re.findall(r"^\+\+\+ b/(\S+)$", p.read_text(), re.M)}
    touched |= {f.relative_to(SRC / "_added").as_posix() for f in SRC.glob("_added/**/*.go")}
    return {"github.com/FerretDB/FerretDB/" + str(Path(f).parent) for f in touched}


def test_every_patched_package_passes_its_go_tests():
    _need_go()
    run = subprocess.run(["bash", str(BUILD), "--test", "-count=1"], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    packages = _patched_packages()
    assert "github.com/FerretDB/FerretDB/internal/handler/sjson" in packages
    for package in packages:  # "ok" with tests, "?" when the package has none (then it is only compiled)
        assert re.search(rf"^(ok|\?)\s+{re.escape(package)}\s", run.stdout, re.M), \
            f"{package} not tested:\n{run.stdout}"
    assert re.search(r"^ok\s+github.com/FerretDB/FerretDB/internal/handler/sjson\s", run.stdout, re.M)


def _copy_of_build(tmp_path: Path) -> Path:
    copy = tmp_path / "ferretdb"
    shutil.copytree(SRC, copy)
    return copy


def test_a_patch_that_does_not_apply_stops_the_build_naming_it(tmp_path):
    _need_go()
    copy = _copy_of_build(tmp_path)
    patch = sorted(copy.glob("patches/*.patch"))[0]
    patch.write_text(patch.read_text().replace("\n \t", "\n \tchanged upstream ", 1))
    run = subprocess.run(["bash", str(copy / "build.sh"), str(tmp_path / "out")], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode != 0
    assert f"patches/{patch.name} does not apply cleanly to FerretDB v1.24.2" in run.stderr, run.stderr
    assert not (tmp_path / "out").exists()


def test_an_added_file_may_not_replace_an_upstream_file(tmp_path):
    _need_go()
    copy = _copy_of_build(tmp_path)
    (copy / "_added" / "internal" / "handler" / "msg_delete.go").write_text("package handler\n")
    run = subprocess.run(["bash", str(copy / "build.sh"), str(tmp_path / "out")], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode != 0
    assert "_added/internal/handler/msg_delete.go exists in FerretDB v1.24.2" in run.stderr, run.stderr


def test_the_binarys_cache_key_covers_every_patch_and_added_file_as_bootstrap_computes_it():
    sources = paths.ferretdb_sources(REPO)
    assert set(SRC.glob("patches/*.patch")) <= set(sources) and set(SRC.glob("_added/**/*.go")) <= set(sources)
    line = next(text for text in (REPO / "infra" / "bootstrap.sh").read_text().splitlines()
                if text.startswith("FERRET_HASH="))
    command = line.removeprefix("FERRET_HASH=$(").removesuffix(")")
    bootstrap_key = subprocess.run(["bash", "-c", command], env={"REPO": str(REPO), "PATH": "/usr/bin:/bin"},
                                   capture_output=True, text=True, check=True).stdout.strip()
    assert bootstrap_key == paths.ferretdb_key(REPO)
