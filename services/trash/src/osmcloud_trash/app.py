"""Composition root of the trash service: builds the real adapters (MongoDB store, the
runtime's outbox publisher and clock, the files and auth clients), hands them to bootstrap.py,
and subscribes the handlers, the purge job, the routes and the error mapping."""

import aiohttp
from aiohttp import web

from osmcloud_common import tracing
from osmcloud_common.domain_errors import map_domain_errors
from osmcloud_common.events import FileDeleted, FileRestored, FileUploaded, FileVersionsPruned
from osmcloud_common.http import REGISTRY_KEY
from osmcloud_common.osmand import CompatAuthenticator
from osmcloud_common.runtime import Runtime, serve

from .admin_routes import TrashAdminRoutes
from .bootstrap import Trash, bootstrap
from .files_client import FilesClient
from .osmand_compat import OsmandTrash, osmand_error
from .routes import TrashRoutes, native_error
from .settings import TrashSettings
from .store import TrashStore


def build_app(settings: TrashSettings | None = None) -> web.Application:
    settings = settings or TrashSettings()
    runtime = Runtime(settings)
    runtime.hand_over_to("files", settings.files_url)
    store = TrashStore(items=runtime.db["items"], claims=runtime.db["claims"],
                       batches=runtime.outbox_collection("purge_batches"), empties=runtime.db["empties"])
    files = FilesClient(settings.files_url, settings.gateway_secret, settings.files_timeout_seconds)
    trash = bootstrap(settings, store=store, publisher=runtime, clock=runtime.clock, files=files)
    runtime.on_startup(store.create_indexes)
    runtime.on_event(FileDeleted, trash.handlers.file_deleted)
    runtime.on_events(FileUploaded, trash.handlers.files_uploaded)
    runtime.on_event(FileRestored, trash.handlers.file_restored)
    runtime.on_event(FileVersionsPruned, trash.handlers.versions_pruned)
    runtime.on_account_deleted()  # every document of the user; idempotent
    runtime.background(trash.purger.run)
    app = runtime.create_app()
    trash.purger.bind_metrics(app[REGISTRY_KEY])
    app.on_cleanup.append(lambda _: files.close())
    map_domain_errors(app, native_error, osmand_error)
    TrashRoutes(store, trash.items).register(app)
    register_osmand(app, settings, trash)
    assert runtime.admin is not None  # made by create_app
    TrashAdminRoutes(trash.purger).register(runtime.admin)
    return app


def register_osmand(app: web.Application, settings: TrashSettings, trash: Trash) -> None:
    """OsmAnd's /userdata/empty-trash; its device checks go to auth over a session of its own,
    opened once the event loop runs."""
    auth = CompatAuthenticator(None, settings.auth_url, settings.gateway_secret)  # type: ignore[arg-type]

    async def open_session(_: web.Application) -> None:
        auth.session = aiohttp.ClientSession(trace_configs=tracing.client_trace_configs())

    async def close_session(_: web.Application) -> None:
        if auth.session is not None:
            await auth.session.close()
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    OsmandTrash(trash.empty_trash, auth).register(app)


def main() -> None:
    settings = TrashSettings()
    serve(build_app(settings), settings)
