"""Composition root of the trash service."""

from aiohttp import web

from osmcloud_common.http import REGISTRY_KEY
from osmcloud_common.runtime import Runtime, serve

from .files_client import FilesClient
from .handlers import register_handlers
from .purge import Purger
from .routes import TrashRoutes
from .settings import TrashSettings
from .store import TrashStore


def build_app(settings: TrashSettings | None = None) -> web.Application:
    settings = settings or TrashSettings()
    runtime = Runtime(settings)
    store = TrashStore(items=runtime.db["items"], claims=runtime.db["claims"],
                       batches=runtime.outbox_collection("purge_batches"))
    runtime.on_startup(store.create_indexes)
    register_handlers(runtime, store, settings)
    runtime.on_account_deleted()  # every document of the user; idempotent
    purger = Purger(runtime, store, settings)
    runtime.background(purger.run)
    files = FilesClient(settings.files_url, settings.gateway_secret, settings.files_timeout_seconds)
    app = runtime.create_app()
    purger.bind_metrics(app[REGISTRY_KEY])
    app.on_cleanup.append(lambda _: files.close())
    TrashRoutes(store, purger, files).register(app)
    return app


def main() -> None:
    settings = TrashSettings()
    serve(build_app(settings), settings)
