"""CPU time a local stack's processes have used, from /proc: what a benchmark divides by
its requests for a figure that the machine's other load moves less than latency."""

from __future__ import annotations

import json
import os
from pathlib import Path


def cpu_seconds(state_dir: Path) -> dict[str, float]:
    """User + system CPU seconds of each stack process so far, by name (from its PID file)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid_file in (state_dir / "run").glob("*.pid"):
        try:
            pid = json.loads(pid_file.read_text())["pid"]
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            used[pid_file.stem] = (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, ValueError, KeyError):
            continue
    return used


def spent_ms(before: dict[str, float], after: dict[str, float], per: int) -> dict[str, float]:
    """Milliseconds of CPU per unit (`per` requests) by process, between two cpu_seconds readings."""
    return {name: (after[name] - before.get(name, 0.0)) * 1000 / max(per, 1) for name in after}
