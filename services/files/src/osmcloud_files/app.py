"""Composition root of the files service."""

from aiohttp import web

from osmcloud_common.mongo import SerializedCollection
from osmcloud_common.runtime import Runtime, serve

from .account_deletion import register_account_deletion
from .account_routes import AccountRoutes
from .admin_routes import FilesAdminRoutes
from .grace import register_grace_end
from .handlers import register_handlers
from .operations import Operations
from .osmand_compat import OsmandFilesRoutes
from .reconcile import Reconciler
from .restore import RestoreRoute
from .routes import FilesRoutes
from .settings import FilesSettings
from .store import FilesStore
from .trash_reactions import register_trash_reactions


def build_app(settings: FilesSettings | None = None) -> web.Application:
    settings = settings or FilesSettings()
    runtime = Runtime(settings, uses_blobs=True)
    runtime.hand_over_to("trash", settings.trash_url)
    # one update at a time per document (FerretDB's updates are not atomic, see SerializedCollection)
    heads, accounts = SerializedCollection(runtime.db["heads"]), SerializedCollection(runtime.db["accounts"])
    runtime.relay.add_collection(heads)
    runtime.relay.add_collection(accounts)
    store = FilesStore(heads=heads, versions=SerializedCollection(runtime.db["versions"]), accounts=accounts)
    runtime.on_startup(store.create_indexes)
    runtime.on_startup(runtime.blobs.ensure_bucket)
    register_handlers(runtime, store)
    register_account_deletion(runtime)
    register_trash_reactions(runtime, store)
    ops = Operations(runtime, store, runtime.blobs)
    register_grace_end(runtime, store, ops)
    reconciler = Reconciler(ops, settings.reconcile_seconds)
    runtime.background(reconciler.run)
    app = runtime.create_app()
    AccountRoutes(store, ops).register(app)
    FilesRoutes(runtime, store, runtime.blobs, settings, ops).register(app)
    RestoreRoute(runtime, store, runtime.blobs, settings).register(app)
    OsmandFilesRoutes(runtime, store, runtime.blobs, settings, ops).register(app)
    FilesAdminRoutes(store, runtime.blobs, reconciler).register(runtime.admin)
    return app


def main() -> None:
    settings = FilesSettings()
    serve(build_app(settings), settings)
