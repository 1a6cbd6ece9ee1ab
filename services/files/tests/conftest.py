"""Makes the service-layer fakes (files_fakes.py) importable by this directory's tests
(pytest runs with --import-mode=importlib, which puts no test directory on sys.path)."""

import sys
from pathlib import Path

HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
