"""files on `grace-period-ended`: the Pro grace year is over and the account is back on Start,
so everything above the Start allowance goes to the trash by the grace-end rule
(grace_rule.py, docs/adr/0006-grace-end-rule.md) — a delete marker each, with `file-deleted` —
where it stays 30 days, restorable once Pro is bought again. Afterwards usage is within
Start. Idempotent: applied twice, the second pass finds everything within the allowance.

The live heads stream newest first (the rule's order) and the files to trash go in chunks,
one ledger operation each, so no account-sized list is held. The markers carry
`grace_end: true`: the storage bound never evicts these trash items early
(docs/adr/0005-storage-bound.md)."""

from typing import Any

from osmcloud_common.events import Entitlement, Event, GracePeriodEnded
from osmcloud_common.logging import get_logger

from .grace_rule import GraceEndJudge, LiveFile, StartAllowance
from .operations import Operations
from .store import FilesStore

log = get_logger(__name__)

CHUNK = 500  # files sent to the trash per ledger operation
GRACE_END_MARKER = {"grace_end": True}


def allowance_of(entitlement: Entitlement) -> StartAllowance:
    return StartAllowance(allowed_types=frozenset(entitlement.allowed_types or ()),
                          quota_bytes=entitlement.quota_bytes, max_file_bytes=entitlement.max_file_bytes,
                          max_files=entitlement.max_files)


async def apply_grace_end(store: FilesStore, ops: Operations, user_id: str, entitlement: Entitlement
                          ) -> dict[str, int]:
    """Sends what lies beyond `entitlement` (Start) to the trash; returns counts per reason."""
    allowance = allowance_of(entitlement)
    counts: dict[str, int] = {}
    chunk: list[dict[str, Any]] = []
    judge = GraceEndJudge(allowance)
    async for doc in store.live_heads_newest_first(user_id):
        reason = judge(LiveFile(doc["type"], doc["name"], doc["head"]["size"], doc["head"]["updated_ms"]))
        if reason is None:
            continue
        counts[reason] = counts.get(reason, 0) + 1
        chunk.append(doc)
        if len(chunk) >= CHUNK:
            await _trash(ops, user_id, chunk)
            chunk = []
    if chunk:
        await _trash(ops, user_id, chunk)
    return counts


async def _trash(ops: Operations, user_id: str, docs: list[dict[str, Any]]) -> None:
    result = await ops.trash_files(user_id, docs, "", {"kind": "grace-end"}, marker_fields=GRACE_END_MARKER)
    log.info("grace ended: files sent to the trash", deleted=result["deleted"], skipped=len(result["skipped"]))


class GraceEnd:
    """The grace-period-ended handler, on the ports; the composition root (app.py) subscribes it."""

    def __init__(self, store: FilesStore, ops: Operations) -> None:
        self.store, self.ops = store, ops

    async def grace_ended(self, event: Event) -> None:
        payload = event.payload()
        assert isinstance(payload, GracePeriodEnded)
        entitlement = payload.entitlement
        await self.store.set_entitlement(event.user_id, entitlement, event.occurred_at)
        if entitlement.allowed_types is None:
            return
        counts = await apply_grace_end(self.store, self.ops, event.user_id, entitlement)
        log.info("grace-end rule applied", user_id=event.user_id, **counts)
