"""The periodic job that finds passed deadlines (Pro expiry, end of grace) and applies
them. Safe with several replicas: each transition is a conditional single-document write
that carries its event, so only one replica's write wins."""

import asyncio

from osmcloud_common.clock import Clock
from osmcloud_common.logging import get_logger
from osmcloud_common.publisher import EventPublisher

from .lifecycle import Plans, due_transition
from .operator_plans import overrides_of, plans_for
from .ports import BillingStorePort
from .store import subscription_of

log = get_logger(__name__)


class DeadlineJob:
    def __init__(self, store: BillingStorePort, publisher: EventPublisher, clock: Clock, plans: Plans,
                 interval: float) -> None:
        self.store, self.publisher, self.clock, self.plans, self.interval = store, publisher, clock, plans, interval
        self.applied = 0

    async def run_once(self) -> int:
        now = self.clock.now()
        applied = 0
        for doc in await self.store.due(now):
            before = subscription_of(doc)
            # the account's overrides shape the entitlement; the write expects them unchanged
            transition = due_transition(before, now, plans_for(self.plans, doc))
            if transition is None or transition.event is None:
                continue
            if await self.store.transition(doc["_id"], before, transition.after,
                                           [self.publisher.event(transition.event, doc["_id"])],
                                           expect=overrides_of(doc)):
                applied += 1
                log.info("deadline passed", user_id=doc["_id"], event_type=transition.event.event_type)
        if applied:
            self.publisher.events_written()
        self.applied += applied
        return applied

    async def run(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval)
