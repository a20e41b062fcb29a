"""One escalation sweep over 100,000 open notices of which 10,000 are due (target: under 2 s).

    python -m bench.escalation [--database-url postgresql://postgres@127.0.0.1:5432/ws_bench_esc] [--fresh]

Set-up (kept in the database named, reused unless --fresh): all of Zhejiang (bench.zhejiang), one red
typhoon warning for the whole province (≈100,000 primary notices, SMS only), then 10,000 notices made due:
9,000 for their first re-call and 1,000 grid notices with their calls used up, which escalate to their
village heads (1,000 new notices and messages). Every run starts from a copy of that set-up (CREATE
DATABASE … TEMPLATE) and times `escalation_tick` — expiry check, then claim/decide/write batch after batch
until nothing due is left — at a few batch sizes, then checks each due notice was acted on exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import timedelta
from pathlib import Path

import asyncpg
from sqlalchemy import func, select, text, update

from bench.zhejiang import ensure_zhejiang, recreate_database
from warning_service.actor import Actor
from warning_service.clock import FakeClock, utcnow
from warning_service.config import Settings, async_database_url
from warning_service.db import Database
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning.models import Hazard, Level, WarningCreate
from warning_service.early_warning.policy import load_policy
from warning_service.early_warning.service import issue_warning
from warning_service.escalation.service import escalation_tick
from warning_service.notice.models import Notice
from warning_service.runtime import Runtime

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/ws_bench_esc"
POLICY = """
[levels.red]
channels = ["sms"]
"""
DUE, EXHAUSTED = 10_000, 1_000
MIN = timedelta(minutes=1)


def _split(url: str) -> tuple[str, str]:
    base, _, name = url.rpartition("/")
    return base, name


async def prepare(url: str, fresh: bool, tmp: Path) -> None:
    """The set-up database: province, warning, 10,000 due notices; marked done with a comment."""
    base, name = _split(url)
    if not fresh:
        conn = await asyncpg.connect(base + "/postgres")
        try:
            ready = await conn.fetchval(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", name)
        finally:
            await conn.close()
        if ready == "escalation bench ready":
            return
    await recreate_database(url)
    await ensure_zhejiang(url)
    policy_file = tmp / "bench-policy.toml"
    policy_file.write_text(POLICY, encoding="utf-8")
    db = Database(async_database_url(url))
    settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    issued = utcnow() - 10 * MIN  # deadlines (3 min) are in the past for the due ones, set below
    data = WarningCreate(hazard=Hazard.typhoon, level=Level.red, description="超强台风预计今夜登陆浙江沿海。",
                         targets=["33"])
    async with db.session() as s:
        res = await issue_warning(s, data=data, actor=Actor(name="user:bench", scope_path="/33/", scope_code="33"),
                                  policy=load_policy(policy_file), settings=settings, now=issued)
    wid = res.warning.id
    async with db.session() as s:
        ids = (await s.execute(select(Notice.id, Notice.role).where(Notice.warning_id == wid).order_by(Notice.id))
               ).all()
        later = utcnow() + 30 * MIN  # not due during the run
        await s.execute(update(Notice).where(Notice.warning_id == wid).values(next_action_at=later, deadline=later))
        grid = [i for i, role in ids if role == "grid_responsible"]
        step = len(ids) // DUE
        due = [i for i, _ in ids[::step]][:DUE]
        exhausted = [i for i in grid[1::step]][:EXHAUSTED]
        recall = [i for i in due if i not in set(exhausted)][:DUE - len(exhausted)]
        past = utcnow() - MIN
        for part in range(0, len(recall), 5000):
            await s.execute(update(Notice).where(Notice.id.in_(recall[part:part + 5000]))
                            .values(next_action_at=past, deadline=past))
        await s.execute(update(Notice).where(Notice.id.in_(exhausted)).values(
            next_action_at=past, deadline=past - 9 * MIN, attempt_count=3, step="recall"))
    await db.dispose()
    conn = await asyncpg.connect(base + "/postgres")
    try:
        await conn.execute(f'COMMENT ON DATABASE "{name}" IS \'escalation bench ready\'')
    finally:
        await conn.close()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def copy_of(url: str) -> str:
    base, name = _split(url)
    run = f"{name}_run"
    conn = await asyncpg.connect(base + "/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{run}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{run}" TEMPLATE "{name}"')
    finally:
        await conn.close()
    return f"{base}/{run}"


async def one_run(url: str, batch: int) -> dict[str, float | int | str]:
    run_url = await copy_of(url)
    db = Database(async_database_url(run_url))
    settings = Settings(_env_file=None, database_url=run_url, escalation_batch_size=batch)  # type: ignore[call-arg]
    rt = Runtime(settings=settings, db=db, clock=FakeClock(utcnow()))
    try:
        async with db.session() as s:
            open_, due = (await s.execute(select(
                func.count(), func.count().filter(Notice.next_action_at <= rt.clock.now())).where(
                Notice.state.in_(("pending", "delivered")), Notice.requires_ack.is_(True)))).one()
            plan = "\n".join(r[0] for r in (await s.execute(text(
                "EXPLAIN SELECT id FROM notice WHERE next_action_at IS NOT NULL AND next_action_at <= now() "
                "ORDER BY next_action_at LIMIT 1000 FOR NO KEY UPDATE SKIP LOCKED"))).all())
            out_before = (await s.execute(select(func.count()).select_from(OutboxMessage))).scalar_one()
        t0 = time.perf_counter()
        acted = await escalation_tick(rt)
        elapsed = time.perf_counter() - t0
        async with db.session() as s:
            recalls = (await s.execute(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.kind == "recall"))).scalar_one()
            escalations = (await s.execute(select(func.count()).select_from(Notice).where(
                Notice.reason == "escalation"))).scalar_one()
            out_after = (await s.execute(select(func.count()).select_from(OutboxMessage))).scalar_one()
            still_due = (await s.execute(select(func.count()).select_from(Notice).where(
                Notice.next_action_at <= rt.clock.now()))).scalar_one()
            twice = (await s.execute(select(func.count()).select_from(Notice).where(
                Notice.attempt_count > 1, Notice.step == "recall", Notice.reason == "primary",
                Notice.attempt_count != 4))).scalar_one()
        return {"batch": batch, "open": open_, "due": due, "acted": acted, "seconds": elapsed,
                "recalls": recalls, "escalations": escalations, "messages": out_after - out_before,
                "still_due": still_due, "twice": twice, "plan": plan}
    finally:
        await db.dispose()


async def main_async(url: str, fresh: bool, batches: list[int]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        await prepare(url, fresh, Path(tmp))
        setup_s = time.perf_counter() - t0
    conn = await asyncpg.connect(url)
    try:
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    print(f"\nEscalation sweep (PostgreSQL {version}); set-up {setup_s:.1f} s")
    results = [await one_run(url, b) for b in batches]
    first = results[0]
    print(f"  open notices (ack required)     {first['open']:9,d}")
    print(f"  due now                         {first['due']:9,d}   "
          f"({DUE - EXHAUSTED:,d} first re-calls, {EXHAUSTED:,d} escalations to the village)")
    print("  claim plan:\n    " + str(first["plan"]).replace("\n", "\n    "))
    for r in results:
        ok = r["acted"] == r["due"] and r["still_due"] == 0 and r["twice"] == 0
        print(f"  batch {r['batch']:>6,d}: one tick {r['seconds']:6.2f} s  acted on {r['acted']:,d}  "
              f"({r['acted'] / r['seconds']:,.0f}/s)  recalls {r['recalls']:,d}  escalation notices "
              f"{r['escalations']:,d}  messages {r['messages']:,d}  {'exactly once' if ok else 'CHECK FAILED'}")
    best = min(float(r["seconds"]) for r in results)
    default = next((r for r in results if r["batch"] == 1000), results[0])
    print(f"  target < 2 s at the default batch (1,000): {'met' if float(default['seconds']) < 2 else 'MISSED'} "
          f"({float(default['seconds']):.2f} s; best {best:.2f} s)")
    base, name = _split(url)
    conn = await asyncpg.connect(base + "/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}_run" WITH (FORCE)')
    finally:
        await conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=DEFAULT_URL)
    ap.add_argument("--fresh", action="store_true", help="rebuild the set-up database")
    ap.add_argument("--batches", default="1000,5000,10000", help="batch sizes to time, comma separated")
    args = ap.parse_args()
    asyncio.run(main_async(args.database_url, args.fresh, [int(b) for b in args.batches.split(",")]))


if __name__ == "__main__":
    main()
