"""A sweep and an answer or a lift at the same moment, on PostgreSQL: nothing is queued after either commits.

Each test holds one transaction open at a chosen point and waits (on pg_stat_activity, not on a timer) until
the other is blocked on it, so the interleaving is the one named, every run.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from tests.escalation.conftest import GRID, PROVINCE, issue, messages, notice_for, reload, run_sweeps
from warning_service.early_warning import service as warnings
from warning_service.early_warning.models import EarlyWarning, WarningLift
from warning_service.escalation.service import sweep
from warning_service.notice.answer import acknowledge
from warning_service.notice.models import Notice

MIN = timedelta(minutes=1)


@pytest.fixture(autouse=True)
def postgres_only(db):
    if db.is_sqlite:
        pytest.skip("SQLite serialises writers; these interleavings cannot happen there")


async def blocked_on_a_lock(db, n: int = 1) -> None:
    """Wait until `n` other sessions are waiting for a row lock."""
    async with asyncio.timeout(20):
        while True:
            async with db.session() as s:
                waiting = (await s.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"))).scalar_one()
            if waiting >= n:
                return
            await asyncio.sleep(0.01)


async def silent_until_escalation(db, clock, settings, tree, policy):
    """A grid person who has had their three calls; at t0+12 the next sweep tells the village."""
    t0 = clock.now()
    wid = await issue(db, settings, clock, targets=[GRID], policy=policy)
    for minute in (3, 6, 9):
        await run_sweeps(db, t0 + minute * MIN)
    clock.set(t0 + 12 * MIN)
    return wid, await notice_for(db, wid, tree.person(GRID, "grid_responsible"))


async def answer_while_the_sweep_escalates(db, clock, settings, tree, policy) -> tuple[int, int]:
    """The grid person answers while a sweep holds their notice and tells the village; returns both ids."""
    wid, grid = await silent_until_escalation(db, clock, settings, tree, policy)

    async def answer() -> None:
        async with db.session() as s:
            await acknowledge(s, notice_id=grid.id, path="link", now=clock.now())

    async with db.sessionmaker() as s:
        r = await sweep(s, now=clock.now(), batch_size=100)
        assert r.escalated == 1
        answering = asyncio.create_task(answer())
        await blocked_on_a_lock(db)  # the answer waits for the sweep's lock on the grid's notice
        await s.commit()
    await answering
    [village] = r.opened[grid.id]
    assert (await reload(db, grid.id)).state == "acknowledged"
    return grid.id, village


async def test_an_answer_arriving_while_the_sweep_escalates_closes_what_the_sweep_opened(
        db, clock, settings, tree, town_top):
    grid, village = await answer_while_the_sweep_escalates(db, clock, settings, tree, town_top)
    assert (await reload(db, village)).state == "closed"
    assert [m.status for m in await messages(db, village)] == ["cancelled"]


async def test_a_chain_an_answer_left_open_is_closed_by_the_next_sweep_and_never_called(
        db, clock, settings, tree, town_top):
    grid, village = await answer_while_the_sweep_escalates(db, clock, settings, tree, town_top)
    later = clock.now() + 60 * MIN
    await run_sweeps(db, later)
    v = await reload(db, village)
    assert (v.state, v.next_action_at) == ("closed", None)
    assert len(await messages(db, village)) == 1  # its first SMS only: never re-called
    assert (await run_sweeps(db, later)).claimed == 0


async def test_a_sweep_passes_over_a_notice_whose_answer_is_being_written(
        db, clock, settings, tree, town_top):
    t0 = clock.now()
    wid = await issue(db, settings, clock, targets=[GRID], policy=town_top)
    n = await notice_for(db, wid, tree.person(GRID, "grid_responsible"))
    clock.set(t0 + 3 * MIN)
    async with db.sessionmaker() as s:
        await acknowledge(s, notice_id=n.id, path="link", now=clock.now())
        # locked by the answer: skipped, not waited on
        assert (await run_sweeps(db, clock.now())).claimed == 0
        await s.commit()
    assert (await run_sweeps(db, clock.now())).claimed == 0
    assert await messages(db, n.id, "recall") == []


async def test_a_lift_waiting_for_the_sweep_closes_the_notices_the_sweep_opened(
        db, clock, settings, tree, town_top):
    wid, grid = await silent_until_escalation(db, clock, settings, tree, town_top)

    async def lift() -> None:
        async with db.session() as s:
            await warnings.lift_warning(s, warning_id=wid, data=WarningLift(reason="台风已减弱"), actor=PROVINCE,
                                        now=clock.now())

    async with db.sessionmaker() as s:
        r = await sweep(s, now=clock.now(), batch_size=100)
        lifting = asyncio.create_task(lift())
        await blocked_on_a_lock(db)  # the lift waits for the sweep's share lock on the warning
        await s.commit()
    await lifting
    [village] = r.opened[grid.id]
    v = await reload(db, village)
    assert (v.state, v.next_action_at) == ("closed", None)
    assert [m.status for m in await messages(db, village)] == ["cancelled"]
    assert (await run_sweeps(db, clock.now() + 60 * MIN)).claimed == 0


async def test_a_sweep_leaves_alone_the_notices_of_a_warning_being_changed(
        db, clock, settings, tree, town_top):
    # Without skipping, the sweep would wait for the warning (its new rows reference it) while the lift waits
    # for the sweep's notices: a deadlock PostgreSQL breaks by failing one of them.
    wid, grid = await silent_until_escalation(db, clock, settings, tree, town_top)
    async with db.sessionmaker() as s:
        # what lift_warning and update_warning do first
        await s.execute(select(EarlyWarning.id).where(EarlyWarning.id == wid).with_for_update())
        async with asyncio.timeout(20), db.session() as other:  # never waits on the change
            r = await sweep(other, now=clock.now(), batch_size=100)
        assert (r.claimed, r.busy, r.escalated) == (1, 1, 0)
        await s.rollback()
    g = await reload(db, grid.id)
    assert (g.step, g.next_action_at) == ("recall", clock.now())  # still due, untouched
    assert (await run_sweeps(db, clock.now())).escalated == 1
    async with db.session() as s:
        assert (await s.execute(select(Notice.id).where(Notice.escalation_of == grid.id))).scalars().all()


async def test_a_chain_end_waits_while_its_primary_notice_is_being_answered(
        db, clock, settings, tree, town_top):
    t0 = clock.now()
    wid = await issue(db, settings, clock, targets=[GRID], policy=town_top)
    for minute in range(3, 36, 3):
        await run_sweeps(db, t0 + minute * MIN)
    grid = await notice_for(db, wid, tree.person(GRID, "grid_responsible"))
    end = t0 + 36 * MIN  # the town head's calls are used up: the chain's end
    async with db.sessionmaker() as s:
        # an answer to the grid's notice holds it (as acknowledge does) while the sweep reaches the end
        await s.execute(select(Notice.id).where(Notice.id == grid.id).with_for_update())
        async with asyncio.timeout(20), db.session() as other:  # skipped, not waited on: no deadlock
            r = await sweep(other, now=end, batch_size=100)
        assert (r.deferred, r.timed_out) == (1, 0)
        await s.rollback()
    assert (await reload(db, grid.id)).state == "pending"
    assert (await run_sweeps(db, end + timedelta(seconds=1))).claimed == 0
    assert (await run_sweeps(db, end + timedelta(seconds=2))).timed_out == 1
    assert (await reload(db, grid.id)).state == "timed_out"
