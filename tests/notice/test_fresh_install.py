"""A province's first warning on a fresh install: the plan for opening notices cannot go quadratic.

With statistics taken while `notice` was empty (a fresh install after VACUUM ANALYZE, autovacuum or a
restore), PostgreSQL believes the table holds no rows. An anti-join against `notice` in the opening
INSERT … SELECT is then planned as a nested loop over a sequential scan of the rows the same INSERT adds.
The statement must not read `notice` at all: the partial unique index decides duplicates.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import event, func, select, text

from tests.escalation.conftest import add_people, issue
from tests.factories import build_tree
from warning_service.notice.models import Notice

pytestmark = pytest.mark.postgres_only
TOWN = "331081001"


async def test_opening_notices_after_vacuum_analyze_on_empty_tables_does_not_read_notice(db, settings, clock):
    if db.is_sqlite:
        pytest.skip("PostgreSQL's planner statistics")
    await build_tree(db, now=clock.now())
    await add_people(db, region="33108100100101", n=3000, now=clock.now())
    async with db.engine.connect() as c:
        conn = await c.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("TRUNCATE notice, outbox CASCADE"))
        await conn.execute(text("VACUUM ANALYZE notice"))
        await conn.execute(text("VACUUM ANALYZE outbox"))
    seen: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().upper().startswith("INSERT INTO NOTICE"):
            seen.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        started = time.perf_counter()
        wid = await issue(db, settings, clock, targets=[TOWN])
        elapsed = time.perf_counter() - started
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
    async with db.session() as s:
        opened = (await s.execute(select(func.count()).select_from(Notice).where(Notice.warning_id == wid))
                  ).scalar_one()
    assert opened > 3000
    [(statement, parameters)] = seen
    async with db.engine.connect() as c:
        raw = await c.get_raw_connection()
        plan = "\n".join(r[0] for r in await raw.driver_connection.fetch("EXPLAIN " + statement, *parameters))
    body = plan.split("Conflict Resolution", 1)[0]
    assert "on notice" not in body.split("\n", 1)[1], plan  # nothing below the INSERT scans notice
    assert "Anti Join" not in plan, plan
    # Quadratic over 3,000 rows would take many seconds; linear takes a fraction of one.
    assert elapsed < 10, elapsed
