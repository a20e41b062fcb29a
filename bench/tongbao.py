"""通报 over a province's month and 复盘 of the province-wide warning, on PostgreSQL.

    python -m bench.tongbao [--database-url postgresql://postgres@127.0.0.1:5432/ws_bench_report] [--runs 3]

(or BENCH_TONGBAO_DATABASE_URL). Reuses bench.report's province (all of Zhejiang, 4 grids per village, one
person per post) and its Zhejiang-wide red typhoon warning (~130,000 notices, outcomes played by SQL), adds
29 county-wide orange warnings the same way (30 warnings in the month), then times the 通报 of the province
for the month (target ≤ 5 s; with 转移任务 on the province-wide warning, so evacuation completion is scored)
and the 复盘 of the province-wide warning (target ≤ 5 s), as the API serves them
(one read-only snapshot each), and prints what they found.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from sqlalchemy import select, text

from bench.report import MAINTENANCE, OUTCOME_SQL, ensure_warning, line, timed
from bench.zhejiang import ensure_zhejiang
from warning_service.actor import Actor
from warning_service.assessment import service as assessment
from warning_service.clock import utcnow
from warning_service.config import Settings, async_database_url
from warning_service.db import Database
from warning_service.early_warning.models import EarlyWarning, Hazard, Level, WarningCreate
from warning_service.early_warning.policy import load_policy
from warning_service.early_warning.service import issue_warning
from warning_service.region.models import Region
from warning_service.report import scope
from warning_service.review import service as review

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/ws_bench_report"
MARK = "bench.tongbao"
COUNTY_WARNINGS = 29
WEIGHTS = {"answer": 40, "on_time": 30, "proxy": 10, "feedback": 20, "evacuation": 20}
# 转移任务 for the province-wide warning: one danger zone and one household per village, a task for each
# village's responsible person (a stand-in for the 包户责任人's evacuation notice), two in three moved.
EVACUATION_SQL = [
    """INSERT INTO danger_zone (code, name, kind, region_code, village_code, town_code, active, created_at,
                                updated_at)
       SELECT 'BZ' || r.code, r.name || '山洪危险区', 'torrent', r.code, r.code, r.parent_code, true, now(), now()
       FROM region r WHERE r.level = 'village' ON CONFLICT (code) DO NOTHING""",
    """INSERT INTO evac_household (code, zone_id, region_code, name, people, vulnerable, keeper_id, active,
                                   created_at, updated_at)
       SELECT 'BH' || z.region_code, z.id, z.region_code, '户主', 3, '', p.id, true, now(), now()
       FROM danger_zone z JOIN LATERAL (SELECT id FROM person WHERE region_code = z.region_code LIMIT 1) p ON true
       WHERE z.code LIKE 'BZ%' ON CONFLICT (code) DO NOTHING""",
    """INSERT INTO evacuation_task (notice_id, warning_id, household_id, zone_id, status, returned_early,
                                    created_at, updated_at)
       SELECT n.id, n.warning_id, h.id, h.zone_id, CASE WHEN n.id % 3 = 0 THEN 'pending' ELSE 'moved' END, false,
              now(), now()
       FROM notice n JOIN evac_household h ON h.region_code = n.region_code AND h.code LIKE 'BH%'
       WHERE n.warning_id = :w AND n.reason = 'primary' AND n.role = 'village_responsible'
       ON CONFLICT DO NOTHING""",
    "ANALYZE danger_zone", "ANALYZE evac_household", "ANALYZE evacuation_task",
]


TASKS = text("SELECT count(*) FROM evacuation_task WHERE warning_id = :w")


async def ensure_evacuation(db: Database, wid: int) -> int:
    """转移任务 on the province-wide warning (once), so the 通报 scores evacuation completion too."""
    async with db.session() as s:
        have = (await s.execute(TASKS, {"w": wid})).scalar()
    if have:
        return int(have)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    for sql in EVACUATION_SQL:
        async with db.session() as s:
            await s.execute(text(sql), {"w": wid} if ":w" in sql else {})
    async with db.session() as s:
        have = (await s.execute(TASKS, {"w": wid})).scalar()
    print(f"{have:,} 转移任务 opened in {time.perf_counter() - t0:.1f} s")
    return int(have)  # type: ignore[arg-type]


async def ensure_county_warnings(db: Database, url: str) -> list[int]:
    """29 county-wide orange warnings this month, issued through the service, outcomes played by SQL."""
    async with db.session() as s:
        have = list((await s.execute(select(EarlyWarning.id).where(
            EarlyWarning.description.like(f"%{MARK}%")).order_by(EarlyWarning.id))).scalars())
        counties = list((await s.execute(select(Region.code).where(Region.level == "county")
                                         .order_by(Region.code).limit(COUNTY_WARNINGS))).scalars())
    if len(have) >= COUNTY_WARNINGS:
        return have
    settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    actor = Actor(name="user:zj_duty", scope_path="/33/", scope_code="33")
    t0 = time.perf_counter()
    for code in counties[len(have):]:
        data = WarningCreate(hazard=Hazard.rainstorm, level=Level.orange, targets=[code],
                             description=f"强降雨持续,注意防范山洪地质灾害。({MARK})")
        async with db.session() as s:
            res = await issue_warning(s, data=data, actor=actor, policy=load_policy(None), settings=settings,
                                      now=utcnow())
        for sql in OUTCOME_SQL:
            async with db.session() as s:
                await s.execute(text(sql), {"w": res.warning.id} if ":w" in sql else {})
        have.append(res.warning.id)  # type: ignore[arg-type]
    async with db.engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for sql in MAINTENANCE:
            await auto.execute(text(sql))
    print(f"{COUNTY_WARNINGS} county warnings issued and played in {time.perf_counter() - t0:.1f} s")
    return have


async def run(url: str, *, runs: int, fresh: bool) -> None:
    await ensure_zhejiang(url, fresh=fresh)
    db = Database(async_database_url(url))
    try:
        wid = await ensure_warning(db, url, rebuild=False)
        await ensure_county_warnings(db, url)
        tasks = await ensure_evacuation(db, wid)
        now = utcnow()
        per = assessment.period("month", now.astimezone(assessment.CST).date())
        async with db.session() as s:
            province = await s.get(Region, "33")
            version = (await s.execute(text("SHOW server_version"))).scalar()
            counts = (await s.execute(text(
                "SELECT count(DISTINCT warning_id), count(*) FROM notice n JOIN early_warning w ON w.id = n.warning_id"
                " WHERE w.issued_at >= :a AND w.issued_at < :b"), {"a": per.since, "b": per.until})).one()
            largest = (await s.execute(text("SELECT count(*) FROM notice WHERE warning_id = :w"), {"w": wid})).scalar()

        async def tongbao() -> dict:
            async with scope.snapshot(db) as s:
                return await assessment.tongbao(s, region=province, per=per, weights=WEIGHTS)  # type: ignore[arg-type]

        async def fupan() -> dict:
            async with scope.snapshot(db) as s:
                scoped = await scope.scoped_warning(s, warning_id=wid, region=province)  # type: ignore[arg-type]
                return await review.review(s, scoped=scoped, now=utcnow())

        await tongbao()  # warm, as a running server would be
        t_tb, tb = await timed(tongbao, runs)
        t_rv, rv = await timed(fupan, runs)
    finally:
        await db.dispose()
    sec = tb["sections"]["actual"]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n通报 and 复盘 on Zhejiang (PostgreSQL {version}; {os.cpu_count()} CPUs, load average {load})")
    print(f"  month {per.label}: {counts[0]} warnings, {counts[1]:,} notices (largest {largest:,})")
    best = " ".join(f"{t['name']} {t['score']}" for t in sec["red"][:1])
    worst = " ".join(f"{t['name']} {t['score']}" for t in sec["black"][:1])
    print(f"  通报: {len(sec['towns']):,} towns scored; required {sec['totals']['required']:,}, answered "
          f"{sec['totals']['acknowledged']:,}; 红榜 #1 {best}, 黑榜 #1 {worst}")
    scored = sum(1 for t in sec["towns"] if t["evac_households"])
    print(f"  转移: {tasks:,} tasks on the province-wide warning; the 通报 counts {sec['evac_households']:,} "
          f"({sec['evac_moved']:,} moved), {scored:,} towns scored on completion, the others renormalised")
    print(f"  复盘: {len(rv['events']):,} timeline rows; answers {rv['counts'].get('answers', 0):,} = report "
          f"{rv['report']['totals']['acknowledged']:,}; proxies {rv['counts'].get('proxy', 0):,}")
    print(line("通报, province, month (30 warnings)", t_tb, 5))
    print(line("复盘, province-wide warning", t_rv, 5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("BENCH_TONGBAO_DATABASE_URL", DEFAULT_URL))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--fresh", action="store_true", help="drop and recreate the database first")
    args = ap.parse_args()
    asyncio.run(run(args.database_url, runs=args.runs, fresh=args.fresh))


if __name__ == "__main__":
    main()
