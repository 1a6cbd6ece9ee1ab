"""The event-publisher port: what application code needs to record events in the outbox, wake
the relay and hand events over to a service that reads them next. `runtime.Runtime` is the real
one; `RecordingPublisher` is the in-memory one service-layer tests use."""

from typing import Any, Protocol

from .clock import Clock
from .events import Payload, make_event
from .mongo import Collection
from .outbox import outbox_entry


class EventPublisher(Protocol):
    def event(self, payload: Payload, user_id: str) -> dict[str, Any]:
        """An outbox entry for `payload`, to be written with the change that causes it."""
        ...

    def events_written(self, collection: Collection | None = None, doc_id: Any = None,
                       outbox: list[dict[str, Any]] | None = None) -> None:
        """After a write that carried events: the relay publishes them now (`outbox`: the
        document's outbox as the write left it, if the write returned it)."""
        ...

    async def hand_over(self, target: str, entries: list[dict[str, Any]]) -> bool:
        """Gives `target` the events just recorded and waits until it has applied them."""
        ...


class RecordingPublisher:
    """For service-layer tests: builds real outbox entries (on the given clock) and records what
    was woken and handed over; `handover_fails` makes hand-overs answer False (Kafka brings them)."""

    def __init__(self, clock: Clock, producer: str = "test", topic_prefix: str = "osmcloud.",
                 handover_fails: bool = False) -> None:
        self.clock, self.producer, self.topic_prefix = clock, producer, topic_prefix
        self.handover_fails = handover_fails
        self.created: list[dict[str, Any]] = []
        self.wakes: list[tuple[Collection | None, Any]] = []
        self.handed: list[tuple[str, list[dict[str, Any]]]] = []

    def event(self, payload: Payload, user_id: str) -> dict[str, Any]:
        evt = make_event(payload, user_id=user_id, producer=self.producer, occurred_at=self.clock.now())
        entry = outbox_entry(evt, self.topic_prefix)
        self.created.append(entry)
        return entry

    def events_written(self, collection: Collection | None = None, doc_id: Any = None,
                       outbox: list[dict[str, Any]] | None = None) -> None:
        self.wakes.append((collection, doc_id))

    async def hand_over(self, target: str, entries: list[dict[str, Any]]) -> bool:
        if entries:
            self.handed.append((target, list(entries)))
        return not self.handover_fails
