"""Composition root of the files service: builds the real adapters (Mongo collections, S3,
the Kafka outbox through the shared Runtime), hands them as ports to bootstrap.py, and
registers routes, event handlers and background jobs."""

from aiohttp import web
from prometheus_client import Gauge

from osmcloud_common.domain_errors import map_domain_errors
from osmcloud_common.events import GracePeriodEnded, TrashItemPurged
from osmcloud_common.http import REGISTRY_KEY
from osmcloud_common.mongo import SerializedCollection
from osmcloud_common.runtime import Runtime, serve

from .account_deletion import AccountErasure
from .account_routes import AccountRoutes
from .admin_routes import FilesAdminRoutes
from .backup_routes import BackupRoutes
from .bootstrap import bootstrap
from .bulk import BulkUploads
from .bulk_routes import BulkRoutes
from .handlers import ENTITLEMENT_EVENTS
from .ledger import Ledger
from .native_errors import api_error
from .osmand_compat import OsmandFilesRoutes
from .ports import RuntimePublisher, S3Blobs
from .restore import RestoreRoute
from .routes import FilesRoutes
from .settings import FilesSettings
from .store import FilesStore
from .zip_slots import ZipSlots


def build_app(settings: FilesSettings | None = None) -> web.Application:
    settings = settings or FilesSettings()
    runtime = Runtime(settings, uses_blobs=True)
    assert runtime.blobs is not None
    runtime.hand_over_to("trash", settings.trash_url)
    # one update at a time per document (FerretDB's updates are not atomic, see SerializedCollection)
    heads, accounts = SerializedCollection(runtime.db["heads"]), SerializedCollection(runtime.db["accounts"])
    runtime.relay.add_collection(heads)
    runtime.relay.add_collection(accounts)
    ledger = Ledger(accounts, ttl=settings.operation_ttl_seconds)
    store = FilesStore(heads=heads, versions=SerializedCollection(runtime.db["versions"]), accounts=accounts,
                       ledger=ledger, migrations=runtime.db["migrations"], listings=runtime.db["listings"])
    prunes = runtime.outbox_collection("prunes")
    services = bootstrap(clock=runtime.clock, events=RuntimePublisher(runtime, heads, accounts, prunes), store=store,
                         ledger=ledger, blobs=S3Blobs(runtime.blobs), blob_deletions=runtime.db["blob_deletions"],
                         prunes=prunes,
                         max_upload_bytes=settings.max_upload_bytes,
                         reconcile_seconds=settings.reconcile_seconds,
                         reconcile_grace_seconds=min(30.0, settings.operation_ttl_seconds / 4),
                         listing_cache_files=settings.listing_cache_files)
    runtime.on_startup(store.create_indexes)

    async def add_feed_blocks() -> None:  # before the feed answers from blocks
        await store.add_feed_blocks()
    runtime.on_startup(add_feed_blocks)
    runtime.on_startup(runtime.blobs.ensure_bucket)
    for payload_type in ENTITLEMENT_EVENTS:
        runtime.on_event(payload_type, services.entitlements.entitlement_changed)
    runtime.on_event(GracePeriodEnded, services.grace_end.grace_ended)
    runtime.on_account_deleted(AccountErasure(services.blobs, runtime.erase_user_documents).erase)
    runtime.on_events(TrashItemPurged, services.trash_reactions.items_purged)
    runtime.background(services.trash_reactions.forget_relayed)
    runtime.background(services.reconciler.run)
    app = runtime.create_app()
    # domain errors answered in our JSON shape; /userdata/ handlers map theirs to OsmAnd's themselves
    map_domain_errors(app, api_error)
    AccountRoutes(store, services.ops, services.listings).register(app)
    zips = ZipSlots(settings.zip_downloads_max, settings.zip_downloads_per_account)
    Gauge("zip_downloads_in_flight", "zips (backups, chosen files) this process is streaming",
          registry=app[REGISTRY_KEY]).set_function(lambda: zips.in_flight)
    Gauge("listing_cache_files", "files whose listing entries this process keeps (LISTING_CACHE_FILES bounds them)",
          registry=app[REGISTRY_KEY]).set_function(lambda: services.listings.cache.files_held)
    BackupRoutes(store, services.blobs, runtime.clock, zips, settings.zip_stall_seconds).register(app)
    FilesRoutes(services, settings).register(app)
    BulkRoutes(BulkUploads(services.uploader, settings.bulk_max_files, services.batches), store).register(app)
    RestoreRoute(services.ops).register(app)
    OsmandFilesRoutes(services, settings).register(app)
    assert runtime.admin is not None  # made by create_app
    FilesAdminRoutes(store, runtime.blobs, services.reconciler).register(runtime.admin)
    return app


def main() -> None:
    settings = FilesSettings()
    serve(build_app(settings), settings)
