"""Composition root of the trash service."""

from aiohttp import web

from osmcloud_common.runtime import Runtime, serve

from .account_deletion import register_account_deletion
from .handlers import register_handlers
from .routes import TrashRoutes
from .settings import TrashSettings
from .store import TrashStore


def build_app(settings: TrashSettings | None = None) -> web.Application:
    settings = settings or TrashSettings()
    runtime = Runtime(settings)
    store = TrashStore(items=runtime.outbox_collection("items"))
    runtime.on_startup(store.create_indexes)
    register_handlers(runtime, store, settings)
    register_account_deletion(runtime)
    app = runtime.create_app()
    TrashRoutes(store).register(app)
    return app


def main() -> None:
    settings = TrashSettings()
    serve(build_app(settings), settings)
