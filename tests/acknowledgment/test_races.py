"""PostgreSQL: an answer racing a lift that commits between the answer's insert and its update."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from tests.acknowledgment.conftest import acks, issue, ledger_actions, notice_of, reload
from warning_service.acknowledgment import service
from warning_service.acknowledgment.service import NotAcknowledgeable
from warning_service.delivery.models import Notice

pytestmark = pytest.mark.postgres_only
GRID = "33108100100101"


async def _blocked_on_a_lock(db, pid_of_holder: int) -> None:
    """Wait until some other backend waits for a lock the holder has (no sleeping on a timer)."""
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
            return await service.acknowledge_first(db, notice_id=n.id, path="link", now=runtime.clock.now())
        async with db.session() as s:
            return await service.acknowledge(s, notice_id=n.id, path="link", now=runtime.clock.now())

    task = asyncio.create_task(answer())
    await _blocked_on_a_lock(db, holder)
    await closing_tx.commit()
    if route == "hot_path":
        assert await task is None  # rolled back; the general path then says why
    else:
        with pytest.raises(NotAcknowledgeable) as exc:
            await task
        assert exc.value.extra["reason"] == "lifted"
    assert await acks(db) == []
    assert await ledger_actions(db, "ack.recorded") == []
    assert (await reload(db, Notice, n.id)).state == "closed"
