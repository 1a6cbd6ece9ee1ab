"""Composition root of the auth service."""

import asyncio
from datetime import timedelta

from aiohttp import web
from prometheus_client import Gauge

from osmcloud_common.deleted_accounts import COLLECTION as DELETED_ACCOUNTS
from osmcloud_common.domain_errors import map_domain_errors
from osmcloud_common.http import REGISTRY_KEY
from osmcloud_common.runtime import Runtime, serve

from .admin_routes import AuthAdminRoutes
from .audit_trail import audit_middleware
from .billing_client import BillingClient
from .bootstrap import bootstrap
from .limits import RequestLimits
from .mailer import Mailer
from .osmand_compat import OsmandAccounts, osmand_error
from .routes import LAST_SEEN_EVERY, AuthRoutes, native_error
from .settings import AuthSettings
from .store import AuthStore
from .token_cache import TokenCache
from .verify_peers import VerifyPeers, advertised_url

PURGE_EVERY_SECONDS = 600
# a cached token answer is re-read from the database after this long whatever happens
VERIFY_CACHE_MAX_AGE_SECONDS = 60.0
# expired codes are kept a day, so a late try still hears "expired" rather than "unknown"
KEEP_EXPIRED_CODES = timedelta(days=1)


def build_app(settings: AuthSettings | None = None) -> web.Application:
    settings = settings or AuthSettings()
    runtime = Runtime(settings)
    runtime.hand_over_to("billing", settings.billing_url)
    cache = TokenCache(max_entries=settings.verify_cache_entries, lease_seconds=settings.verify_cache_lease_seconds,
                       max_age_seconds=VERIFY_CACHE_MAX_AGE_SECONDS, last_seen_every=LAST_SEEN_EVERY)
    peers = VerifyPeers(cache, runtime.db["verify_replicas"],
                        url=settings.verify_cache_url or advertised_url(settings.http_host, settings.http_port),
                        gateway_secret=settings.gateway_secret, renew_seconds=settings.verify_cache_renew_seconds,
                        peer_timeout=settings.verify_cache_peer_timeout_seconds)
    store = AuthStore(users=runtime.outbox_collection("users"), codes=runtime.db["codes"],
                      devices=runtime.outbox_collection("devices"),
                      deleted_accounts=runtime.outbox_collection(DELETED_ACCOUNTS),
                      counters=runtime.db["counters"], revoked=peers.drop,
                      known_addresses=runtime.db["known_addresses"])
    if settings.verify_cache_entries:
        runtime.background(peers.run)
    limits = RequestLimits(runtime.db["code_limits"])
    runtime.on_startup(store.create_indexes)

    async def purge_stale_codes_and_limits() -> None:
        """Plain deletes of what has run out: safe with any number of replicas."""
        while True:
            await asyncio.sleep(PURGE_EVERY_SECONDS)
            now = runtime.clock.now()
            await store.purge_codes(now - KEEP_EXPIRED_CODES)
            await limits.purge(now)
            await store.purge_known_addresses(now - timedelta(days=settings.known_address_days))
    runtime.background(purge_stale_codes_and_limits)

    billing = BillingClient(settings.billing_url, settings.gateway_secret, settings.billing_timeout_seconds)
    auth = bootstrap(settings, store=store, limits=limits,
                     mailer=Mailer(settings.smtp_host, settings.smtp_port, settings.mail_from),
                     publisher=runtime, clock=runtime.clock, billing=billing)

    async def erase(user_id: str) -> None:
        await auth.deletion.erase(user_id)
    runtime.on_account_deleted(erase)  # before the app: the consumer is built from the handlers
    app = runtime.create_app()
    assert runtime.admin is not None  # create_app made it
    map_domain_errors(app, native_error, osmand_error)
    AuthRoutes(runtime.clock, store, auth.codes, auth.accounts, auth.deletion, cache,
               settings.browser_session_days * 86400).register(app)
    peers.register(app)
    _cache_metrics(app, cache, peers)
    app.on_cleanup.append(lambda _: billing.close())
    OsmandAccounts(store, auth.codes, auth.accounts, auth.deletion, auth.orders).register(app)
    AuthAdminRoutes(store, auth.accounts, auth.deletion).register(runtime.admin)
    app.middlewares.append(audit_middleware(runtime, store))
    return app


def _cache_metrics(app: web.Application, cache: TokenCache, peers: VerifyPeers) -> None:
    registry = app[REGISTRY_KEY]
    for name, what, value in (
            ("verify_cache_hits_total", "verify answers served from memory", lambda: cache.hits),
            ("verify_cache_misses_total", "verify answers read from the database", lambda: cache.misses),
            ("verify_cache_entries", "tokens held in memory", lambda: len(cache)),
            ("verify_cache_usable", "1 while this replica holds its lease", lambda: int(cache.usable)),
            ("verify_cache_replicas_fenced_total", "unreachable replicas fenced by our logouts",
             lambda: peers.fenced_total)):
        Gauge(name, what, registry=registry).set_function(value)


def main() -> None:
    settings = AuthSettings()
    serve(build_app(settings), settings)
