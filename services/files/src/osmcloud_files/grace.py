"""files on `grace-period-ended`: the Pro grace year is over and the account is back on Start
rules, so every live file of a type Start does not allow goes to the trash — a delete marker
each, with `file-deleted` — where it stays 30 days, restorable if Pro is bought again.
Idempotent: applied twice, the second pass finds no live file of those types."""

from osmcloud_common.events import Event, GracePeriodEnded
from osmcloud_common.logging import get_logger
from osmcloud_common.runtime import Runtime

from .operations import Operations
from .store import FilesStore

log = get_logger(__name__)


def register_grace_end(runtime: Runtime, store: FilesStore, ops: Operations) -> None:
    async def grace_ended(event: Event) -> None:
        entitlement = event.payload().entitlement
        await store.set_entitlement(event.user_id, entitlement, event.occurred_at)
        if entitlement.allowed_types is None:
            return
        live_types = {head["type"] for head in await store.live_heads(event.user_id, None)}
        for file_type in sorted(live_types - set(entitlement.allowed_types)):
            result = await ops.delete_type(event.user_id, file_type, device_id="")
            log.info("grace ended: type sent to the trash", type=file_type, result=result)

    runtime.on_event(GracePeriodEnded, grace_ended)
