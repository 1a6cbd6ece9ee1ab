"""The storage bound, free of I/O (docs/adr/0005-storage-bound.md).

Everything an account keeps counts as stored: the live version of each file, old versions,
every version of a trashed file and every delete marker, each at its size plus RECORD_BYTES
(the version document and the blob's own overhead: what makes a flood of empty versions
bounded too). The plan gives a storage limit (Entitlement.storage_limit: 2 x the quota unless
billing says otherwise). When a change that adds stored bytes (an upload, a restore, a delete
marker) leaves the account above its limit, the same request frees what it added — never
more than the excess — by removing, in this order:
  1. the oldest old versions of the same file (never its newest version; for a file in the
     trash never its delete marker nor the version a restore brings back);
  2. the oldest trash items (whole files, oldest deletion first), except the file this
     request changed and items the grace-end rule put there;
  3. the oldest old versions of any other live file.
Live files are never touched: what is live stays within the quota by the upload rules."""

from collections.abc import Iterable
from typing import Any

RECORD_BYTES = 256


def version_cost(size: int | None) -> int:
    """What one version document counts toward stored bytes (a delete marker has size -1)."""
    return max(0, size or 0) + RECORD_BYTES


def bytes_to_free(stored: int, limit: int, added: int) -> int:
    """How much a change that added `added` stored bytes must free: the excess over the
    limit, but never more than the change added (an account above its limit for another
    reason — a lowered plan — keeps what it has and just cannot grow)."""
    return max(0, min(stored - limit, added))


def protected_ids(head: dict[str, Any] | None, newest_live: dict[str, Any] | None) -> set[str]:
    """The versions of one file the bound never removes: its head (newest version), and for
    a file in the trash (the head is a delete marker) also its newest live version — what a
    restore brings back. `head` is the head document's `head`, `newest_live` the file's newest
    version that is not a delete marker."""
    if head is None:
        return set()
    keep = {head["version_id"]}
    if head.get("deleted") and newest_live is not None:
        keep.add(newest_live["_id"])
    return keep


def take_oldest(candidates_oldest_first: Iterable[dict[str, Any]], need: int) -> tuple[list[dict[str, Any]], int]:
    """The oldest candidates whose costs together reach `need` (all of them if they do not);
    returns them and what they free."""
    chosen, freed = [], 0
    for version in candidates_oldest_first:
        if freed >= need:
            break
        chosen.append(version)
        freed += version_cost(version.get("size"))
    return chosen, freed
