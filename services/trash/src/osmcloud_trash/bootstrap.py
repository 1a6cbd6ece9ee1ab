"""Trash's composition root for its application layer: given the ports (storage, event
publisher, the clock rules read, the wall clock claims use, the files service), it wires the
purge, the trash page's use cases, OsmAnd's empty-trash and the event handlers. app.py passes
the real adapters; service-layer tests pass in-memory ones."""

from dataclasses import dataclass

from osmcloud_common.clock import Clock, SystemClock
from osmcloud_common.publisher import EventPublisher

from .empty_trash import EmptyTrash
from .handlers import Handlers
from .items import TrashItems
from .ports import FilesPort, TrashStorePort
from .purge import Purger
from .settings import TrashSettings


@dataclass(frozen=True)
class Trash:
    store: TrashStorePort
    purger: Purger
    items: TrashItems
    empty_trash: EmptyTrash
    handlers: Handlers


def bootstrap(settings: TrashSettings, *, store: TrashStorePort, publisher: EventPublisher, clock: Clock,
              files: FilesPort, wall_clock: Clock | None = None) -> Trash:
    wall = wall_clock or SystemClock()
    purger = Purger(store, publisher, clock, settings, wall_clock=wall)
    return Trash(store=store, purger=purger, items=TrashItems(store, purger, files, wall_clock=wall),
                 empty_trash=EmptyTrash(store, purger, files),
                 handlers=Handlers(store, settings.retention_days, purger))
