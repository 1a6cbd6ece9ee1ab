"""The files service's composition root for its application layer, as cosmicpython's
bootstrap: it receives the ports (ports.py) — clock, event publisher, heads/versions store,
usage ledger, blob store — and wires the application services on them, the event handlers
among them. app.py passes the real adapters and subscribes the handlers; the service-layer
tests (tests/files_fakes.py) pass fakes and call the handlers directly."""

from dataclasses import dataclass
from typing import Any

from .blob_cleanup import DeferredBlobDeletions
from .bulk_batch import BatchUploader
from .grace import GraceEnd
from .handlers import EntitlementHandlers
from .ledger import Ledger
from .listing import ListingCache, Listings
from .operations import Operations
from .ports import Blobs, Clock, EventPublisher
from .reconcile import Reconciler
from .storage_bound import StorageBound
from .store import FilesStore
from .trash_reactions import TrashReactions
from .upload_groups import UploadGroups
from .uploads import Uploader


@dataclass(frozen=True)
class FilesServices:
    clock: Clock
    events: EventPublisher
    store: FilesStore
    ledger: Ledger
    blobs: Blobs
    bound: StorageBound
    ops: Operations
    uploader: Uploader
    batches: BatchUploader
    groups: UploadGroups
    listings: Listings
    reconciler: Reconciler
    entitlements: EntitlementHandlers
    grace_end: GraceEnd
    trash_reactions: TrashReactions


def bootstrap(*, clock: Clock, events: EventPublisher, store: FilesStore, ledger: Ledger, blobs: Blobs,
              blob_deletions: Any, prunes: Any, max_upload_bytes: int, reconcile_seconds: float,
              reconcile_grace_seconds: float = 30.0, listing_cache_files: int = 50_000) -> FilesServices:
    """`listing_cache_files` bounds the entries the listing keeps (listing.py); `blob_deletions`
    is the collection of blob keys whose deletion waits for S3 (blob_cleanup.py);
    `prunes` the outbox collection of prune records (trash_reactions.py), whose written
    documents `events.prune_written` names."""
    bound = StorageBound(events, store, ledger, blobs)
    deferred = DeferredBlobDeletions(blob_deletions, blobs, clock)
    ops = Operations(clock, events, store, ledger, blobs, bound, deferred, max_upload_bytes)
    uploader = Uploader(clock, events, store, ledger, blobs, ops, max_upload_bytes)
    batches = BatchUploader(clock, events, store, ledger, blobs, ops, max_upload_bytes)
    return FilesServices(clock=clock, events=events, store=store, ledger=ledger, blobs=blobs, bound=bound, ops=ops,
                         uploader=uploader, batches=batches, groups=UploadGroups(uploader, batches),
                         listings=Listings(store, ListingCache(listing_cache_files)),
                         reconciler=Reconciler(ops, reconcile_seconds, reconcile_grace_seconds),
                         entitlements=EntitlementHandlers(store), grace_end=GraceEnd(store, ops),
                         trash_reactions=TrashReactions(clock, events, store, blobs, prunes))
