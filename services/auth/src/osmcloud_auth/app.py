"""Composition root of the auth service."""

from aiohttp import web

from osmcloud_common.runtime import Runtime, serve

from .mailer import Mailer
from .routes import AuthRoutes
from .settings import AuthSettings
from .store import AuthStore


def build_app(settings: AuthSettings | None = None) -> web.Application:
    settings = settings or AuthSettings()
    runtime = Runtime(settings)
    store = AuthStore(users=runtime.outbox_collection("users"), codes=runtime.db["codes"],
                      devices=runtime.db["devices"])
    runtime.on_startup(store.create_indexes)
    app = runtime.create_app()
    AuthRoutes(runtime, store, Mailer(settings.smtp_host, settings.smtp_port, settings.mail_from), settings
               ).register(app)
    return app


def main() -> None:
    settings = AuthSettings()
    serve(build_app(settings), settings)
