"""A service's startup objects are out of the garbage collector's full collections."""

import gc

from aiohttp import web

from osmcloud_common.runtime import freeze_startup_objects


async def test_what_exists_at_startup_is_frozen_and_what_comes_later_is_not():
    try:
        before = gc.get_freeze_count()
        await freeze_startup_objects(web.Application())
        assert gc.get_freeze_count() > before
        later = [[] for _ in range(10)]
        assert all(gc.is_tracked(x) for x in later) and gc.get_freeze_count() >= before
    finally:
        gc.unfreeze()
