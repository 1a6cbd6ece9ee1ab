"""Composition root of the auth service."""

import asyncio
from datetime import timedelta

from aiohttp import web

from osmcloud_common.deleted_accounts import COLLECTION as DELETED_ACCOUNTS
from osmcloud_common.runtime import Runtime, serve

from .account_deletion import AccountDeletion
from .billing_client import BillingClient
from .codes import Codes
from .limits import RequestLimits
from .mailer import Mailer
from .osmand_compat import OsmandAccounts
from .osmand_orders import OrderIds
from .routes import AuthRoutes
from .settings import AuthSettings
from .store import AuthStore

PURGE_EVERY_SECONDS = 600
# expired codes are kept a day, so a late try still hears "expired" rather than "unknown"
KEEP_EXPIRED_CODES = timedelta(days=1)


def build_app(settings: AuthSettings | None = None) -> web.Application:
    settings = settings or AuthSettings()
    runtime = Runtime(settings)
    store = AuthStore(users=runtime.outbox_collection("users"), codes=runtime.db["codes"],
                      devices=runtime.outbox_collection("devices"),
                      deleted_accounts=runtime.outbox_collection(DELETED_ACCOUNTS),
                      counters=runtime.db["counters"])
    limits = RequestLimits(runtime.db["code_limits"])
    runtime.on_startup(store.create_indexes)

    async def purge_stale_codes_and_limits() -> None:
        """Plain deletes of what has run out: safe with any number of replicas."""
        while True:
            await asyncio.sleep(PURGE_EVERY_SECONDS)
            now = runtime.clock.now()
            await store.purge_codes(now - KEEP_EXPIRED_CODES)
            await limits.purge(now)
    runtime.background(purge_stale_codes_and_limits)

    codes = Codes(runtime, store, limits, Mailer(settings.smtp_host, settings.smtp_port, settings.mail_from),
                  settings)
    deletion = AccountDeletion(runtime, store, codes, limits)
    deletion.register_events()
    app = runtime.create_app()
    AuthRoutes(runtime, store, codes).register(app)
    deletion.register(app)
    billing = BillingClient(settings.billing_url, settings.gateway_secret, settings.billing_timeout_seconds)
    app.on_cleanup.append(lambda _: billing.close())
    OsmandAccounts(runtime, store, codes, deletion, OrderIds(billing, store)).register(app)
    return app


def main() -> None:
    settings = AuthSettings()
    serve(build_app(settings), settings)
