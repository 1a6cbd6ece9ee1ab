"""Composition root of the billing service."""

from aiohttp import web

from osmcloud_common.runtime import Runtime, serve

from .account_deletion import register_account_deletion
from .handlers import register_handlers
from .routes import BillingRoutes
from .settings import BillingSettings
from .store import BillingStore


def build_app(settings: BillingSettings | None = None) -> web.Application:
    settings = settings or BillingSettings()
    runtime = Runtime(settings)
    store = BillingStore(accounts=runtime.outbox_collection("accounts"))
    register_handlers(runtime, store, settings)
    register_account_deletion(runtime)
    app = runtime.create_app()
    BillingRoutes(runtime, store, settings).register(app)
    return app


def main() -> None:
    settings = BillingSettings()
    serve(build_app(settings), settings)
