"""How much memory a stack's process holds while a benchmark streams through it: the
resident set from /proc, sampled in a thread (benchmarks/files_vs_s3.py, export_account.py)."""

from __future__ import annotations

import json
import threading
from pathlib import Path


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def process_id(state_dir: Path, name: str) -> int:
    """The pid of a local stack's process (`files`, `gateway`, ...), from its state directory."""
    return int(json.loads((state_dir / "run" / f"{name}.pid").read_text())["pid"])


class RssSampler:
    """A process's resident set every `every` seconds, in a thread: baseline, peak, samples."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid, self.every = pid, every
        self.baseline = self.peak = rss_bytes(pid)
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(rss_bytes(self.pid))
            self.peak = max(self.peak, self.samples[-1])

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))

    @property
    def growth(self) -> int:
        return self.peak - self.baseline

    def growth_by_quarter(self) -> list[int]:
        """The peak growth reached by the end of each quarter of the samples: flat memory stops
        rising after the first; memory that follows the size rises in every one."""
        n = len(self.samples)
        return [max(self.samples[:max(1, n * q // 4)], default=self.baseline) - self.baseline for q in (1, 2, 3, 4)]
