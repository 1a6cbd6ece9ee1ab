"""OsmAnd's `POST /userdata/empty-trash?deviceid&accessToken`, answered on the trash's own
items and purge path: a qualifying entry is purged exactly like our native "delete now"
(claim, purge batch with `trash-item-purged`, item gone; files then removes every version
and blob of the file). Rules per entry: osmand_rules.py.

Authenticated by deviceid + accessToken, asked of auth on every call (nginx cannot read
the credentials of a compat call; osmcloud_common.osmand)."""

import json
from typing import Any

from aiohttp import web

from osmcloud_common.domain_errors import DomainError
from osmcloud_common.errors import ApiError
from osmcloud_common.logging import get_logger
from osmcloud_common.osmand import MALFORMED_REQUEST, CompatAuthenticator, OsmandError

from .empty_trash import EmptyTrash
from .errors import MalformedEntries
from .osmand_rules import parse_entries
from .routes import native_error

log = get_logger(__name__)


def osmand_error(error: DomainError) -> ApiError:
    """Trash's domain errors on /userdata/: a malformed request in the protocol's shape. empty-trash
    raises no other (files' outages are answered per entry); the app's error middleware would
    put one in that shape."""
    if isinstance(error, MalformedEntries):
        return OsmandError(MALFORMED_REQUEST, error.message)
    return native_error(error)


class OsmandTrash:
    def __init__(self, empty_trash: EmptyTrash, auth: CompatAuthenticator) -> None:
        self.empty_trash_of, self.auth = empty_trash, auth

    def register(self, app: web.Application) -> None:
        app.router.add_post("/userdata/empty-trash", self.empty_trash)

    async def empty_trash(self, request: web.Request) -> web.Response:
        who = await self.auth.authenticate(request)
        try:
            body = await request.json(loads=_strict_loads)
        except Exception:
            raise OsmandError(
                MALFORMED_REQUEST, "the body must be a JSON array of {\"name\",\"type\",\"updatetime\"}") from None
        entries = parse_entries(body)
        results = await self.empty_trash_of.answer(who.user_id, entries)
        by_entry = {id(r.entry): r for r in results}
        log.info("osmand empty-trash", user_id=who.user_id, entries=len(entries),
                 deleted=sum(r.status == "deleted" for r in results))
        return web.json_response({"status": "ok", "results": [by_entry[id(e)].to_json() for e in entries]})


def _strict_loads(text: str) -> Any:
    """json.loads that refuses NaN and Infinity (not JSON, and not a time)."""
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)
