"""A worker judges another gone (and sends its rows again) only when that worker could have beaten and did not:
never on heartbeats that went stale because the database was away. The real outage is in
test_engine_faults.py (its own PostgreSQL cluster stopped 10 s); here each rule is shown on its own."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text

from tests.delivery.conftest import issue, outbox, status_counts
from warning_service.delivery import dispatcher, store
from warning_service.delivery.dispatcher import Dispatcher

ALIVE = "alive:1:x"


async def held_by_a_worker_whose_beats_went_stale(db, clock, wid: int, *, stale_for: float) -> int:
    """Every row of the warning claimed by ALIVE, whose last beat reached the database `stale_for` s ago (it
    kept beating into a database that was away), under a lease far from its end."""
    now = clock.now()
    async with db.session() as s:
        await store.register_worker(s, worker=ALIVE, host="h", pid=1, now=now - timedelta(seconds=stale_for))
        rows = await store.claim(s, now=now, lease_until=now + timedelta(seconds=600), batch_size=1000,
                                 worker=ALIVE)
    return len(rows)


async def test_a_worker_starting_while_the_database_is_away_takes_nothing_from_a_live_one(
        client, duty, db, runtime, clock, console, monkeypatch):
    wid = await issue(client, duty, targets=["331081001"])
    held = await held_by_a_worker_whose_beats_went_stale(
        db, clock, wid, stale_for=3 * runtime.settings.dispatch_worker_gone_seconds)
    register = store.register_worker
    refused = []

    async def away_once(session, **kw):
        if not refused:
            refused.append(kw["worker"])
            raise ConnectionRefusedError("the database is away")
        await register(session, **kw)

    monkeypatch.setattr(store, "register_worker", away_once)
    await Dispatcher(runtime).run(drain=True)
    assert refused
    assert await status_counts(db, wid) == {"sending": held}
    assert not console.sent  # the live worker's sends are not made again


async def test_a_worker_starting_just_after_the_database_restarted_waits_for_the_others_to_beat(
        client, duty, db, runtime, clock, console, monkeypatch):
    wid = await issue(client, duty, targets=["331081001"])
    held = await held_by_a_worker_whose_beats_went_stale(
        db, clock, wid, stale_for=3 * runtime.settings.dispatch_worker_gone_seconds)

    async def restarted(_session):
        return 0.5  # only a restarted server says this; the fault test restarts a real one

    monkeypatch.setattr(dispatcher, "server_uptime", restarted)
    await Dispatcher(runtime).run(drain=True)
    assert await status_counts(db, wid) == {"sending": held}
    assert not console.sent


@pytest.mark.parametrize("uptime", [None, 3600.0], ids=["embedded", "server-up-an-hour"])
async def test_a_worker_starting_on_a_database_that_was_up_takes_a_dead_ones_rows_at_once(
        client, duty, db, runtime, clock, console, monkeypatch, uptime):
    wid = await issue(client, duty, targets=["331081001"])
    await held_by_a_worker_whose_beats_went_stale(
        db, clock, wid, stale_for=2 * runtime.settings.dispatch_worker_gone_seconds)

    async def up(_session):
        return uptime

    monkeypatch.setattr(dispatcher, "server_uptime", up)
    await Dispatcher(runtime).run(drain=True)
    assert set(await status_counts(db, wid)) == {"delivered"}
    assert sorted(m.idempotency_key for m in console.sent) == sorted(
        m.idempotency_key for m in await outbox(db, warning_id=wid))


async def test_the_database_says_how_long_it_has_been_up_by_its_own_clock(db):
    async with db.session() as s:
        uptime = await dispatcher.server_uptime(s)
        if db.is_sqlite:
            assert uptime is None  # embedded: never away while we run
            return
        started = (await s.execute(text("SELECT pg_postmaster_start_time()"))).scalar_one()
        now = (await s.execute(text("SELECT now()"))).scalar_one()
    assert uptime == pytest.approx((now - started).total_seconds(), abs=1.0)


async def test_a_running_worker_whose_beat_hung_judges_no_one_until_the_others_could_beat_again(
        client, duty, db, runtime, clock, console):
    runtime.settings.dispatch_heartbeat_seconds = 0.25
    runtime.settings.dispatch_worker_gone_seconds = 1.5
    wid = await issue(client, duty, targets=["331081001"])
    held = await held_by_a_worker_whose_beats_went_stale(db, clock, wid, stale_for=0)
    engine = Dispatcher(runtime)
    hung, release = asyncio.Event(), asyncio.Event()
    beat = engine._beat

    async def beat_stuck_while_hung() -> None:
        if hung.is_set():
            await release.wait()  # waiting for a connection the whole outage long, neither failing nor done
        await beat()

    engine._beat = beat_stuck_while_hung  # type: ignore[method-assign]
    task = asyncio.create_task(engine.run())
    try:
        await until(lambda: engine._healthy_since is not None and engine._beat_ok_at is not None)
        hung.set()
        await until(lambda: not engine._beat_fresh())
        clock.advance(10)  # the outage: nobody's beat reached the database, the live worker's neither
        release.set()
        await until(lambda: engine._beat_fresh())  # the beat that ends the gap judged no one
        assert await status_counts(db, wid) == {"sending": held}
        async with db.session() as s:  # the live worker beats again, as soon as it can
            await store.heartbeat(s, worker=ALIVE, now=clock.now(), lease_until=clock.now() + timedelta(seconds=600),
                                  renew_before=clock.now())
        await asyncio.sleep(2 * runtime.settings.dispatch_worker_gone_seconds)  # judging again, on fresh beats
        assert await status_counts(db, wid) == {"sending": held}
    finally:
        runtime.stopping.set()
        await asyncio.wait_for(task, 30)
    assert not console.sent


async def until(predicate, *, deadline: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not predicate():
        assert loop.time() < end, "not reached in time"
        await asyncio.sleep(0.01)


async def test_a_worker_back_from_an_outage_longer_than_the_lease_takes_nothing_from_a_live_one(
        client, duty, db, runtime, clock, console, monkeypatch):
    """The live worker could not renew its leases while the database was away; they ran out through no fault
    of its own, and it still holds (and will record) what it sent meanwhile."""
    wid = await issue(client, duty, targets=["331081001"])
    now = clock.now()
    lease = runtime.settings.dispatch_lease_seconds
    async with db.session() as s:
        await store.register_worker(s, worker=ALIVE, host="h", pid=1, now=now - timedelta(seconds=2 * lease))
        held = len(await store.claim(s, now=now, lease_until=now - timedelta(seconds=lease), batch_size=1000,
                                     worker=ALIVE))

    async def restarted(_session):
        return 0.5

    monkeypatch.setattr(dispatcher, "server_uptime", restarted)
    await Dispatcher(runtime).run(drain=True)
    assert await status_counts(db, wid) == {"sending": held}
    assert not console.sent
