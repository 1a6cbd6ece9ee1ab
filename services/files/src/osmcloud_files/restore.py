"""Restoring a trashed file: the trash service calls this synchronously (POST
/internal/restore, service to service, never through the gateway) because the user waits
for the outcome — restored, or refused for quota or plan, with the item kept in the trash.
The work is the application's (Operations.restore): a ledger operation like every other
change, so a crash midway is finished or undone by the reconciler."""

from aiohttp import web
from pydantic import BaseModel

from osmcloud_common.http import identity, json_body

from .domain import parse_file_ref
from .operations import Operations
from .views import version_view


class RestoreRequest(BaseModel):
    file_type: str
    name: str
    tombstone_version_id: str
    last_version_id: str


class RestoreRoute:
    def __init__(self, ops: Operations) -> None:
        self.ops = ops

    def register(self, app: web.Application) -> None:
        app.router.add_post("/internal/restore", self.restore)

    async def restore(self, request: web.Request) -> web.Response:
        who = identity(request)
        body = await json_body(request, RestoreRequest)
        assert isinstance(body, RestoreRequest)
        ref = parse_file_ref(who.user_id, body.file_type, body.name)
        head, retried = await self.ops.restore(ref, body.tombstone_version_id, body.last_version_id, who.device_id)
        if retried:
            return web.json_response(version_view(ref.file_type, ref.name, head.to_doc()))
        return web.json_response({**version_view(ref.file_type, ref.name, head.to_doc()), "category": ref.category})
