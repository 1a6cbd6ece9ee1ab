"""The periodic job that finds passed deadlines (Pro expiry, end of grace) and applies
them. Safe with several replicas: each transition is a conditional single-document write
that carries its event, so only one replica's write wins."""

import asyncio

from osmcloud_common.logging import get_logger
from osmcloud_common.runtime import Runtime

from .lifecycle import Plans, due_transition
from .operator_plans import overrides_of, plans_for
from .store import BillingStore, subscription_of

log = get_logger(__name__)


class DeadlineJob:
    def __init__(self, runtime: Runtime, store: BillingStore, plans: Plans, interval: float) -> None:
        self.rt, self.store, self.plans, self.interval = runtime, store, plans, interval
        self.applied = 0

    async def run_once(self) -> int:
        now = self.rt.clock.now()
        applied = 0
        for doc in await self.store.due(now):
            before = subscription_of(doc)
            transition = due_transition(before, now, plans_for(self.plans, doc))
            if transition is None:
                continue
            if await self.store.transition(doc["_id"], before, transition.after,
                                           [self.rt.event(transition.event, doc["_id"])], expect=overrides_of(doc)):
                applied += 1
                log.info("deadline passed", user_id=doc["_id"], event_type=transition.event.event_type)
        if applied:
            self.rt.events_written()
        self.applied += applied
        return applied

    async def run(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval)
