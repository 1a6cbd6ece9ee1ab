"""The grace-end rule, free of I/O (docs/adr/0006-grace-end-rule.md): when a Pro grace year
ends without renewal, which live files go to the trash so that what stays fits Start.

One deterministic rule, applied in this order:
  1. every file of a type Start does not include;
  2. every Start-type file larger than Start's per-file limit;
  3. of the rest, taken from the most recently changed (newest head time first; equal times
     by type, then name), the longest run that fits both Start's quota and its file count
     stays, and every file after the first that does not fit goes.
Rule 3 keeps a prefix, so every kept file is at least as recently changed as every file it
trashed, and the files it reads can arrive as a stream in that order (no account-sized list
in memory): `GraceEndJudge` judges one file at a time, in `grace_end_order`."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class LiveFile:
    file_type: str
    name: str
    size: int
    changed_ms: int  # server time of the file's newest version


@dataclass(frozen=True)
class StartAllowance:
    allowed_types: frozenset[str]
    quota_bytes: int
    max_file_bytes: int | None
    max_files: int | None


REASON_TYPE = "type_not_in_start"
REASON_FILE_SIZE = "file_over_start_limit"
REASON_OVER_ALLOWANCE = "beyond_start_allowance"


def grace_end_order(f: LiveFile) -> tuple[int, str, str]:
    """Most recently changed first; ties by type, then name (deterministic)."""
    return (-f.changed_ms, f.file_type, f.name)


class GraceEndJudge:
    """Judges files one at a time, in `grace_end_order`: None for a file that stays, the
    reason for one that goes to the trash. Keeps only running totals."""

    def __init__(self, allowance: StartAllowance) -> None:
        self.allowance, self.used, self.count, self.full = allowance, 0, 0, False

    def __call__(self, f: LiveFile) -> str | None:
        a = self.allowance
        if f.file_type not in a.allowed_types:
            return REASON_TYPE
        if a.max_file_bytes is not None and f.size > a.max_file_bytes:
            return REASON_FILE_SIZE
        too_many = a.max_files is not None and self.count + 1 > a.max_files
        if self.full or self.used + f.size > a.quota_bytes or too_many:
            self.full = True
            return REASON_OVER_ALLOWANCE
        self.used += f.size
        self.count += 1
        return None


def decide(files_newest_first: Iterable[LiveFile], allowance: StartAllowance) -> Iterator[tuple[LiveFile, str | None]]:
    """Yields (file, None) for a file that stays and (file, reason) for one that goes to the
    trash. `files_newest_first` must be sorted by `grace_end_order`."""
    judge = GraceEndJudge(allowance)
    for f in files_newest_first:
        yield f, judge(f)


def files_to_trash(files: Iterable[LiveFile], allowance: StartAllowance) -> list[tuple[LiveFile, str]]:
    """The whole decision for a list in any order (tests, small accounts)."""
    return [(f, reason) for f, reason in decide(sorted(files, key=grace_end_order), allowance) if reason]
