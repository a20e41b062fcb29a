"""Province-scale issue: a red typhoon warning for all of Zhejiang, timed against a bare bulk insert.

    python -m bench.issue [--database-url postgresql://postgres@127.0.0.1:5432/ws_bench] [--fresh]

Prints the time to accept and commit the warning (notices + outbox rows + ledger), rows per second, and the
time a bare COPY of the same number of notice and outbox rows takes in the same run, for the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from sqlalchemy import func, select, text

from bench.zhejiang import DEFAULT_URL, ensure_zhejiang
from warning_service.actor import Actor
from warning_service.clock import utcnow
from warning_service.config import Settings, async_database_url
from warning_service.db import Database
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning.models import Hazard, Level, WarningCreate
from warning_service.early_warning.policy import load_policy
from warning_service.early_warning.service import issue_warning
from warning_service.notice.models import Notice


async def bare_copy(db: Database, n_notices: int, n_outbox: int) -> float:
    """COPY the same number of rows into scratch copies of the tables: the floor for any insert."""
    raw = await db.engine.raw_connection()
    conn = raw.driver_connection
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_notice, bench_outbox")
        await conn.execute("CREATE TABLE bench_notice (LIKE notice INCLUDING DEFAULTS INCLUDING INDEXES)")
        await conn.execute("CREATE TABLE bench_outbox (LIKE outbox INCLUDING DEFAULTS INCLUDING INDEXES)")
        now = utcnow()
        notices = [(i, 1, i, "grid_responsible", "33", "primary", None, None, "pending", True, 1, now, now, 0,
                    "initial", None, None, None, now) for i in range(1, n_notices + 1)]
        outbox = [(i, 1, i, 1, "alert", "sms", f"+86139{i:08d}", None, 4, "queued", 0, now, None, None, None, None,
                   None, f"n{i}:alert:r1:sms", now, None, None, now) for i in range(1, n_outbox + 1)]
        ncols = ["id", "warning_id", "person_id", "role", "region_code", "reason", "escalation_of", "root_id",
                 "state", "requires_ack", "round", "deadline", "next_action_at", "attempt_count", "step",
                 "delivered_at", "acknowledged_at", "closed_at", "created_at"]
        ocols = ["id", "warning_id", "notice_id", "revision", "kind", "channel", "address", "region_code",
                 "priority", "status", "attempts", "next_attempt_at", "lease_until", "provider_id", "error_code",
                 "error_message", "segments", "idempotency_key", "created_at", "sent_at", "delivered_at",
                 "updated_at"]
        t0 = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("bench_notice", records=notices, columns=ncols)
            await conn.copy_records_to_table("bench_outbox", records=outbox, columns=ocols)
        elapsed = time.perf_counter() - t0
        await conn.execute("DROP TABLE bench_notice, bench_outbox")
        return elapsed
    finally:
        raw.close()


async def run(url: str, fresh: bool) -> None:
    timings = await ensure_zhejiang(url, fresh=fresh)
    db = Database(async_database_url(url))
    settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    actor = Actor(name="user:zj_duty", scope_path="/33/", scope_code="33")
    data = WarningCreate(hazard=Hazard.typhoon, level=Level.red, description="超强台风预计今夜登陆浙江沿海。",
                         targets=["33"])
    t0 = time.perf_counter()
    async with db.session() as s:
        result = await issue_warning(s, data=data, actor=actor, policy=load_policy(None), settings=settings,
                                     now=utcnow())
    issue_s = time.perf_counter() - t0
    wid = result.warning.id
    async with db.session() as s:
        n_notices = (await s.execute(select(func.count()).select_from(Notice).where(Notice.warning_id == wid))
                     ).scalar_one()
        n_outbox = (await s.execute(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.warning_id == wid))).scalar_one()
        version = (await s.execute(text("SHOW server_version"))).scalar()
    bare_s = await bare_copy(db, n_notices, n_outbox)
    await db.dispose()
    rows = n_notices + n_outbox
    print("\nZhejiang-wide red typhoon warning (PostgreSQL " + str(version) + ")")
    print(f"  regions import (27,036 rows)     {timings['regions_import_s']:8.2f} s" if timings["regions_import_s"]
          else "  regions import                    (reused)")
    print(f"  notices created                 {n_notices:9,d}")
    print(f"  outbox rows queued              {n_outbox:9,d}")
    print(f"  issue, committed                {issue_s:9.2f} s   ({rows / issue_s:,.0f} rows/s)")
    print(f"  bare COPY of the same rows      {bare_s:9.2f} s   ({rows / bare_s:,.0f} rows/s)")
    print(f"  ratio issue / bare COPY         {issue_s / bare_s:9.1f} x")
    print(f"  target                          {'met' if issue_s < 10 else 'MISSED'} (< 10 s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--database-url", default=DEFAULT_URL)
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args()
    asyncio.run(run(args.database_url, args.fresh))


if __name__ == "__main__":
    main()
