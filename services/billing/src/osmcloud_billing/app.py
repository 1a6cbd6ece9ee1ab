"""Composition root of the billing service."""

from aiohttp import web

from osmcloud_common.runtime import Runtime, serve

from .admin_routes import BillingAdminRoutes
from .deadlines import DeadlineJob
from .handlers import register_handlers
from .operator_service import OperatorPlans
from .osmand_orders import OsmandOrders
from .plan_audit import plan_request_middleware, register_plan_audit
from .plans import plans_from
from .receipts import verifier_from
from .routes import BillingRoutes
from .settings import BillingSettings
from .store import BillingStore


def build_app(settings: BillingSettings | None = None) -> web.Application:
    settings = settings or BillingSettings()
    runtime = Runtime(settings)
    runtime.hand_over_to("files", settings.files_url)
    store = BillingStore(accounts=runtime.outbox_collection("accounts"), orders=runtime.db["orders"])
    plans = plans_from(settings)
    runtime.on_startup(store.create_indexes)
    operator_plans = OperatorPlans(runtime, store, plans, settings.default_plan)
    register_handlers(runtime, store, settings, operator_plans.apply_default_plan)
    register_plan_audit(runtime)
    runtime.on_account_deleted()  # every document of the user; idempotent
    runtime.background(DeadlineJob(runtime, store, plans, settings.deadline_scan_seconds).run)
    app = runtime.create_app()
    verifier = verifier_from(settings.sandbox_store, settings.sandbox_receipt_key)
    routes = BillingRoutes(runtime, store, plans, verifier, settings)
    routes.register(app)
    OsmandOrders(runtime, store, verifier, settings, routes).register(app)
    BillingAdminRoutes(store, operator_plans).register(runtime.admin)
    app.middlewares.append(plan_request_middleware(runtime))
    return app


def main() -> None:
    settings = BillingSettings()
    serve(build_app(settings), settings)
