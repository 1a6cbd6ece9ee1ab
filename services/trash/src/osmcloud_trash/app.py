"""Composition root of the trash service."""

import aiohttp
from aiohttp import web

from osmcloud_common.http import REGISTRY_KEY
from osmcloud_common.osmand import CompatAuthenticator
from osmcloud_common.runtime import Runtime, serve

from .admin_routes import TrashAdminRoutes
from .files_client import FilesClient
from .handlers import register_handlers
from .osmand_compat import OsmandTrash
from .purge import Purger
from .routes import TrashRoutes
from .settings import TrashSettings
from .store import TrashStore


def build_app(settings: TrashSettings | None = None) -> web.Application:
    settings = settings or TrashSettings()
    runtime = Runtime(settings)
    runtime.hand_over_to("files", settings.files_url)
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
    register_osmand(app, settings, store, purger, files)
    TrashAdminRoutes(purger).register(runtime.admin)
    return app


def register_osmand(app: web.Application, settings: TrashSettings, store: TrashStore, purger: Purger,
                    files: FilesClient) -> None:
    """OsmAnd's /userdata/empty-trash; its device checks go to auth over a session of its own,
    opened once the event loop runs."""
    auth = CompatAuthenticator(None, settings.auth_url, settings.gateway_secret)  # type: ignore[arg-type]

    async def open_session(_: web.Application) -> None:
        auth.session = aiohttp.ClientSession()

    async def close_session(_: web.Application) -> None:
        if auth.session is not None:
            await auth.session.close()
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    OsmandTrash(store, purger, files, auth).register(app)


def main() -> None:
    settings = TrashSettings()
    serve(build_app(settings), settings)
