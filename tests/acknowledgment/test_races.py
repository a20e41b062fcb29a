"""PostgreSQL: an answer racing a lift that commits between the answer's insert and its update."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from tests.acknowledgment.conftest import acks, issue, ledger_actions, notice_of, reload
from warning_service.notice import answer as service
from warning_service.notice.answer import NotAcknowledgeable
from warning_service.notice.models import Notice

pytestmark = pytest.mark.postgres_only
GRID = "33108100100101"


async def _blocked_on_a_lock(db, pid_of_holder: int) -> None:
    """Wait until some other backend waits for a lock the holder has (no sleeping on a timer)."""
    async with asyncio.timeout(20):
        while True:
            async with db.engine.connect() as c:
                n = (await c.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND :holder = ANY (pg_blocking_pids(pid))"), {"holder": pid_of_holder})).scalar_one()
            if n:
                return
            await asyncio.sleep(0.01)


@pytest.fixture
async def closing_tx(db):
    """A transaction that closes the notice (as a lift does) and holds its row lock until told to commit."""
    if db.is_sqlite:
        pytest.skip("one writer at a time on SQLite: this race cannot happen there")
    conn = await db.engine.connect()
    yield conn
    await conn.close()


@pytest.mark.parametrize("route", ["hot_path", "session_path"])
async def test_answer_racing_a_lift_is_rolled_back_and_refused(runtime, db, tree, closing_tx, route):
    wid = await issue(runtime, targets=[GRID])
    n = await notice_of(db, wid, tree.person(GRID, "grid_responsible"))
    holder = (await closing_tx.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    await closing_tx.execute(text("UPDATE notice SET state = 'closed' WHERE id = :id"), {"id": n.id})
    await closing_tx.execute(text("UPDATE early_warning SET state = 'lifted' WHERE id = :id"), {"id": wid})

    async def answer():
        if route == "hot_path":
            return await service.answer(db, notice_id=n.id, path="link", now=runtime.clock.now())
        async with db.session() as s:
            return await service.acknowledge(s, notice_id=n.id, path="link", now=runtime.clock.now())

    task = asyncio.create_task(answer())
    await _blocked_on_a_lock(db, holder)
    await closing_tx.commit()
    with pytest.raises(NotAcknowledgeable) as exc:
        await task
    assert exc.value.extra["reason"] == "lifted"
    assert await acks(db) == []
    assert await ledger_actions(db, "ack.recorded") == []
    assert (await reload(db, Notice, n.id)).state == "closed"


@pytest.mark.parametrize("route", ["hot_path", "session_path"])
async def test_answer_waiting_on_a_sweep_closes_the_chain_the_sweep_opened(runtime, db, tree, closing_tx, route):
    """The sweep holds the silent notice, escalates it (a new chain notice and its SMS) and commits while
    the answer waits: the answer must still close what it could not see when it started."""
    wid = await issue(runtime, targets=[GRID])
    n = await notice_of(db, wid, tree.person(GRID, "grid_responsible"))
    village = tree.person("331081001001", "village_responsible")
    now = runtime.clock.now()
    holder = (await closing_tx.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    await closing_tx.execute(text("UPDATE notice SET step = 'escalated', next_action_at = NULL WHERE id = :id"),
                             {"id": n.id})
    opened = (await closing_tx.execute(text(
        "INSERT INTO notice (warning_id, person_id, role, region_code, reason, escalation_of, root_id, state, "
        "requires_ack, round, deadline, next_action_at, attempt_count, step, created_at) "
        "VALUES (:w, :p, 'village_responsible', '331081001001', 'escalation', :n, :n, 'pending', true, 1, "
        ":t, :t, 0, 'initial', :t) RETURNING id"), {"w": wid, "p": village, "n": n.id, "t": now})).scalar_one()
    await closing_tx.execute(text(
        "INSERT INTO outbox (warning_id, notice_id, revision, kind, channel, address, priority, status, attempts, "
        "next_attempt_at, idempotency_key, created_at, updated_at) VALUES (:w, :v, 1, 'escalation', 'sms', "
        "'+8613900000002', 4, 'queued', 0, :t, 'race-test', :t, :t)"), {"w": wid, "v": opened, "t": now})

    async def answer():
        if route == "hot_path":
            return await service.answer(db, notice_id=n.id, path="link", now=now)
        async with db.session() as s:
            return await service.acknowledge(s, notice_id=n.id, path="link", now=now)

    task = asyncio.create_task(answer())
    await _blocked_on_a_lock(db, holder)
    await closing_tx.commit()
    assert (await task).status == "acknowledged"
    assert (await reload(db, Notice, n.id)).state == "acknowledged"
    v = await reload(db, Notice, opened)
    assert (v.state, v.next_action_at) == ("closed", None)
    async with db.engine.connect() as c:
        status = (await c.execute(text("SELECT status FROM outbox WHERE idempotency_key = 'race-test'"))).scalar()
    assert status == "cancelled"
    assert len(await acks(db)) == 1
