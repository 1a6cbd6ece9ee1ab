"""The reconciler: a periodic job that finishes what a crashed or cut-off process left.

- An operation not renewed within its time-to-live (ledger.OP_TTL_SECONDS; a live upload
  renews while it streams) is finished if its head moved (the usage it changed is settled)
  or undone if not (its version document and blob are removed, its reservation released).
  This closes the window between storing a blob and moving the head.
- Blobs of undone operations whose deletion waited for S3 (blob_cleanup.py) are deleted.
Safe with several replicas: every step is conditional on the account document or repeatable."""

import asyncio

from osmcloud_common.logging import get_logger

from .operations import Operations

log = get_logger(__name__)


class Reconciler:
    def __init__(self, ops: Operations, every_seconds: float, grace_seconds: float = 30.0) -> None:
        # grace: tolerate clock differences between replicas before taking an op for dead
        self.ops, self.every, self.grace = ops, every_seconds, grace_seconds

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reconciliation failed; will retry", error=repr(exc))

    async def once(self) -> int:
        ledger = self.ops.ledger
        deadline = ledger.now() - self.grace
        done = 0
        for account in await ledger.with_operations():
            for op_id, op in list((account.get("ops") or {}).items()):
                if op.get("expires", 0) < deadline:
                    await self.ops.recover(account, op_id, op)
                    done += 1
        await self.ops.deferred.retry()
        return done
