"""The heavy-read lane: heavy readers take PostgreSQL one statement at a time and rest after each."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from warning_service.db import Database
from warning_service.lane import LANE_KEY, Lane

TIMED = text("SELECT clock_timestamp() AS a, pg_sleep(0.05), clock_timestamp() AS b")


@pytest.fixture
def pg(db: Database) -> Database:
    if db.is_sqlite:
        pytest.skip("the lane guards PostgreSQL's cores; SQLite is one embedded process")
    return db


async def held(db: Database) -> int:
    async with db.session() as s:
        return (await s.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = :k"),
            {"k": LANE_KEY})).scalar_one()


async def test_two_heavy_readers_never_run_statements_at_the_same_time(pg):
    readers = [Database(pg.url, pool_size=2, heavy_read_share=1.0) for _ in range(2)]

    async def read(db: Database) -> list[tuple]:
        out = []
        async with db.session() as s:
            for _ in range(3):
                out.append(tuple((await s.execute(TIMED)).one()[0::2]))
        return out

    try:
        spans = sorted(sum(await asyncio.gather(*(read(r) for r in readers)), []))
    finally:
        for r in readers:
            await r.dispose()
    assert len(spans) == 6
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end <= start  # PostgreSQL's own clock: one statement ended before the next began


async def test_after_a_statement_the_lane_rests_for_the_share_it_leaves_to_others(pg):
    ticks = iter([100.0, 100.2])  # the statement held the lane for 0.2 s
    rests: list[float] = []

    async def rest(seconds: float) -> None:
        rests.append(seconds)

    reader = Database(pg.url, pool_size=2, heavy_read_share=0.25)
    assert reader.lane is not None
    reader.lane.clock, reader.lane.sleep = (lambda: next(ticks)), rest
    try:
        async with reader.session() as s:
            assert (await s.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await reader.dispose()
    assert rests == [pytest.approx(0.6)]  # 0.2 s of 0.25 share: 0.6 s for the answers
    assert (reader.lane.busy, reader.lane.rested) == (pytest.approx(0.2), pytest.approx(0.6))


async def test_a_failed_statement_leaves_the_lane_at_once_and_others_go_on(pg):
    failing = Database(pg.url, pool_size=2, heavy_read_share=0.01)  # a rest of 99 × the statement, if owed
    other = Database(pg.url, pool_size=2, heavy_read_share=1.0)
    try:
        with pytest.raises(DBAPIError):
            async with failing.session() as s:
                await s.execute(text("SELECT 1 / 0"))
        assert failing.lane is not None and failing.lane.rested == 0
        assert await held(pg) == 0
        async with asyncio.timeout(10), other.session() as s:
            assert (await s.execute(text("SELECT 2"))).scalar_one() == 2
    finally:
        await failing.dispose()
        await other.dispose()


async def test_a_reader_cancelled_while_waiting_for_the_lane_holds_nothing(pg):
    holder = Lane(dsn=Database(pg.url)._dsn(), share=1.0)
    waiter = Database(pg.url, pool_size=2, heavy_read_share=1.0)
    await holder.enter()
    try:
        async def wait_for_lane() -> None:
            async with waiter.session() as s:
                await s.execute(text("SELECT 1"))

        task = asyncio.create_task(wait_for_lane())
        await asyncio.sleep(0.2)  # noqa: ASYNC110 — it is blocked in pg_advisory_lock, behind the holder
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await holder.leave()
        await holder.close()
    # The cancelled waiter dropped its connection; its backend may be granted the lock the holder just gave up
    # before it reads the closed socket and exits, so "holds nothing" is checked within a bound.
    async with asyncio.timeout(5):
        while await held(pg):  # noqa: ASYNC110 — a server process's exit, not ours to await
            await asyncio.sleep(0.02)
    async with asyncio.timeout(10), waiter.session() as s:  # and it can read again afterwards
        assert (await s.execute(text("SELECT 3"))).scalar_one() == 3
    await waiter.dispose()


async def test_heavy_readers_use_one_backend_each_and_say_who_they_are(pg):
    reader = Database(pg.url, pool_size=2, heavy_read_share=0.5)
    try:
        async with reader.session() as s:
            workers = (await s.execute(text("SHOW max_parallel_workers_per_gather"))).scalar_one()
            name = (await s.execute(text("SHOW application_name"))).scalar_one()
    finally:
        await reader.dispose()
    assert (workers, name) == ("0", "warning-service heavy read")
    assert pg.lane is None  # the service's own engine answers without the lane


def test_a_share_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="share"):
        Lane(dsn="postgresql://x", share=0)
