"""The process's database handle: warming its connections before a burst."""

from __future__ import annotations

from warning_service.db import RAW_POOL_SIZE, Database


async def test_a_warmed_api_process_has_its_answer_connections_open_before_the_first_answer(db):
    fresh = Database(db.url, pool_size=3)
    try:
        await fresh.warm()
        if db.is_sqlite:
            assert fresh._raw_pool is None  # nothing to open for an embedded database
            return
        pool = await fresh.raw_pool()
        assert pool.get_size() == RAW_POOL_SIZE and pool.get_idle_size() == RAW_POOL_SIZE
        assert fresh.engine.pool.checkedin() == 3  # opened, and given back
    finally:
        await fresh.dispose()
