"""The web app's build and unit tests: Vitest (GPX parsing and statistics, clients/web/src/*.test.ts)
and the initial JavaScript's size budget. No stack needed."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess

from osmcloud_localstack.paths import repo_root

WEB = repo_root() / "clients" / "web"
INITIAL_JS_BUDGET = 250 * 1024  # gzipped


def test_vitest_unit_tests_pass(tmp_path) -> None:
    """Judged from Vitest's JSON report, not its console text: CI may force colours into that."""
    report = tmp_path / "vitest.json"
    env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"}
    result = subprocess.run([str(WEB / "node_modules" / ".bin" / "vitest"), "run", "--reporter=json",
                             f"--outputFile={report}"], cwd=WEB, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = json.loads(report.read_text())
    print({key: summary[key] for key in ("numTotalTests", "numPassedTests", "numFailedTests")})
    assert summary["success"] is True
    assert summary["numPassedTests"] > 0
    assert summary["numPassedTests"] == summary["numTotalTests"]


def test_initial_javascript_is_within_budget() -> None:
    """What the first screen loads (index.html's module script and its preloads) gzipped; the map
    (Leaflet) is a chunk of its own, loaded when the map is opened."""
    dist = WEB / "dist"
    html = (dist / "index.html").read_text()
    initial = re.findall(r'<script type="module" crossorigin src="/(assets/[^"]+\.js)"', html)
    initial += re.findall(r'<link rel="modulepreload" crossorigin href="/(assets/[^"]+\.js)"', html)
    assert initial, html
    size = sum(len(gzip.compress((dist / path).read_bytes(), compresslevel=9)) for path in initial)
    print(f"initial JavaScript: {len(initial)} file(s), {size / 1024:.1f} KiB gzipped")
    assert size <= INITIAL_JS_BUDGET, size
    lazy = [p.name for p in (dist / "assets").glob("MapScreen-*.js")]
    assert lazy and not any(name in " ".join(initial) for name in lazy)
