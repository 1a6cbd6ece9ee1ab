"""Lint, types and dead code are part of `make test` (issue 17): ruff (pycodestyle, pyflakes,
import order, bugbear, pyupgrade) on all Python, mypy strict on every package (pyproject.toml
[tool.mypy]) and vulture on the code we ship (its whitelists in tools/vulture say why each
name it cannot see used is used).
Each check runs as its tool would from `make lint`, and a failure shows the tool's findings."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("tool,args", [
    ("ruff", ("check", "--no-cache", ".")),
    ("mypy", ()),
    ("vulture", ()),
], ids=["ruff", "mypy", "vulture"])
def test_the_tree_is_clean(tool: str, args: tuple[str, ...]) -> None:
    done = run(tool, *args)
    assert done.returncode == 0, f"{tool} found:\n{done.stdout[-6000:]}{done.stderr[-2000:]}"
