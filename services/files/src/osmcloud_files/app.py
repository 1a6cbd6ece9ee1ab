"""Composition root of the files service."""

from aiohttp import web

from osmcloud_common.runtime import Runtime, serve

from .handlers import register_handlers
from .restore import RestoreRoute
from .routes import FilesRoutes
from .settings import FilesSettings
from .store import FilesStore
from .trash_reactions import register_trash_reactions


def build_app(settings: FilesSettings | None = None) -> web.Application:
    settings = settings or FilesSettings()
    runtime = Runtime(settings, uses_blobs=True)
    store = FilesStore(heads=runtime.outbox_collection("heads"), versions=runtime.db["versions"],
                       accounts=runtime.outbox_collection("accounts"))
    runtime.on_startup(store.create_indexes)
    runtime.on_startup(runtime.blobs.ensure_bucket)
    register_handlers(runtime, store)
    register_trash_reactions(runtime, store)
    app = runtime.create_app()
    FilesRoutes(runtime, store, runtime.blobs, settings).register(app)
    RestoreRoute(runtime, store, runtime.blobs, settings).register(app)
    return app


def main() -> None:
    settings = FilesSettings()
    serve(build_app(settings), settings)
