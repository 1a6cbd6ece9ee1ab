"""Composition root of the billing service: builds the real adapters (MongoDB store, the
runtime's outbox publisher and clock, the configured receipt verifier), hands them to
bootstrap.py, and subscribes the handlers and routes."""

from aiohttp import web

from osmcloud_common.domain_errors import map_domain_errors
from osmcloud_common.events import AccountRegistered, StorageUsageChanged
from osmcloud_common.runtime import Runtime, serve

from .admin_routes import BillingAdminRoutes
from .bootstrap import bootstrap
from .plan_audit import plan_request_middleware, register_plan_audit
from .receipts import verifier_from
from .routes import BillingRoutes, native_error
from .settings import BillingSettings
from .store import BillingStore


def build_app(settings: BillingSettings | None = None) -> web.Application:
    settings = settings or BillingSettings()
    runtime = Runtime(settings)
    runtime.hand_over_to("files", settings.files_url)
    store = BillingStore(accounts=runtime.outbox_collection("accounts"), orders=runtime.db["orders"])
    billing = bootstrap(settings, store=store, publisher=runtime, clock=runtime.clock,
                        verifier=verifier_from(settings.sandbox_store, settings.sandbox_receipt_key))
    runtime.on_startup(store.create_indexes)
    runtime.on_event(AccountRegistered, billing.handlers.account_registered)
    runtime.on_events(StorageUsageChanged, billing.handlers.usage_changed)
    register_plan_audit(runtime)
    runtime.on_account_deleted()  # every document of the user; idempotent
    runtime.background(billing.deadlines.run)
    app = runtime.create_app()
    assert runtime.admin is not None  # create_app made it
    map_domain_errors(app, native_error)
    BillingRoutes(billing).register(app)
    BillingAdminRoutes(store, billing.operators).register(runtime.admin)
    app.middlewares.append(plan_request_middleware(runtime))
    return app


def main() -> None:
    settings = BillingSettings()
    serve(build_app(settings), settings)
