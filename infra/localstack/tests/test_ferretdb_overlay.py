"""Go tests of our FerretDB build's patched packages (infra/ferretdb/_overlay): the one-pass
sjson decoder must give exactly what FerretDB's own decoder gives (or refuse), on generated
and on corrupted documents, and FerretDB's own tests of that package must still pass."""

import shutil
import subprocess
from pathlib import Path

import pytest

BUILD = Path(__file__).resolve().parents[2] / "ferretdb" / "build.sh"


def test_overlaid_packages_pass_their_go_tests():
    if shutil.which("go") is None:
        pytest.fail("Go is not on PATH: infra/bootstrap.sh installs the Go the local stack needs", pytrace=False)
    run = subprocess.run(["bash", str(BUILD), "--test", "-count=1"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "ok  \tgithub.com/FerretDB/FerretDB/internal/handler/sjson" in run.stdout
