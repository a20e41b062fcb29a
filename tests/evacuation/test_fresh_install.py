"""A fresh install's first warning: opening evacuation tasks and special notices cannot go quadratic.

With statistics taken while `evacuation_task` and `special_notice` were empty (VACUUM ANALYZE on a fresh
install, autovacuum, a restore), an anti-join against them inside the INSERT that fills them is planned as
a nested loop over a sequential scan of the rows that INSERT adds (20,000 households: minutes). The
statements must not read their own table: the unique constraints decide what is already open.
"""

from __future__ import annotations

import pytest
from sqlalchemy import event, text

from tests.evacuation.conftest import issue

pytestmark = pytest.mark.postgres_only


async def test_opening_tasks_after_vacuum_analyze_on_empty_tables_reads_neither_table(runtime, db, town):
    if db.is_sqlite:
        pytest.skip("PostgreSQL's planner statistics")
    async with db.engine.connect() as c:
        conn = await c.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("evacuation_task", "special_notice", "notice"):
            await conn.execute(text(f"VACUUM ANALYZE {table}"))
    seen: list[tuple[str, str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        head = statement.lstrip().upper()
        for table in ("EVACUATION_TASK", "SPECIAL_NOTICE"):
            # the statement may open with its CTEs (WITH reached AS (…) INSERT INTO …)
            if head.startswith(("INSERT", "WITH")) and f"INSERT INTO {table} " in head:
                seen.append((table.lower(), statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        await issue(runtime, targets=["331081001"])
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
    assert {t for t, _, _ in seen} == {"evacuation_task", "special_notice"}
    async with db.engine.connect() as c:
        raw = await c.get_raw_connection()
        for table, statement, parameters in seen:
            plan = "\n".join(r[0] for r in await raw.driver_connection.fetch("EXPLAIN " + statement, *parameters))
            body = plan.split("Conflict Resolution", 1)[0].split("\n", 1)[1]
            assert f"on {table}" not in body, plan  # nothing below the INSERT scans the table it fills
            assert "Anti Join" not in plan, plan
