"""The audit report on a Zhejiang-wide warning (~130,000 notices), computed by PostgreSQL.

    python -m bench.report [--database-url postgresql://postgres@127.0.0.1:5432/ws_bench_report] [--fresh]
                           [--rebuild] [--runs 5]

(or BENCH_REPORT_DATABASE_URL). Builds — or reuses — the province (bench.zhejiang: all regions, 4 grids per
village, one person per post), issues a red typhoon warning for all of Zhejiang through the warnings
service, then plays out what happened with bulk SQL: receipts, answers on time / late / by proxy, silence,
re-calls and escalations. Prints the time of the full JSON report (target < 2 s) for the province and for
one county, of the summary across warnings, and of the CSV export, with the figures the report found.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select, text

from bench.zhejiang import ensure_zhejiang
from warning_service.actor import Actor
from warning_service.clock import utcnow
from warning_service.config import Settings, async_database_url
from warning_service.db import Database
from warning_service.early_warning.models import EarlyWarning, Hazard, Level, WarningCreate
from warning_service.early_warning.policy import load_policy
from warning_service.early_warning.service import issue_warning
from warning_service.region.models import Region

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/ws_bench_report"
MARK = "bench.report"

# What happened, decided per notice by a hash of its id (reproducible): ‰ thresholds.
OUTCOME_SQL = [
    # Carriers: most SMS delivered, some undelivered, failed or without a receipt yet.
    """UPDATE outbox SET status = CASE WHEN (id::bigint * 7919) % 1000 < 920 THEN 'delivered'
                                       WHEN (id::bigint * 7919) % 1000 < 950 THEN 'undelivered'
                                       WHEN (id::bigint * 7919) % 1000 < 970 THEN 'failed' ELSE 'sent' END,
              attempts = 1, sent_at = created_at + interval '20 seconds',
              delivered_at = CASE WHEN (id::bigint * 7919) % 1000 < 920 THEN created_at + interval '35 seconds' END,
              error_code = CASE WHEN (id::bigint * 7919) % 1000 BETWEEN 920 AND 969 THEN '30006' END,
              updated_at = created_at + interval '35 seconds'
       WHERE warning_id = :w""",
    # Answers: 70 % on time by link / SMS reply / key press, 10 % late, 5 % by proxy, 15 % never.
    """INSERT INTO acknowledgment (notice_id, round, warning_id, person_id, path, acknowledged_at, late, proxy_method)
       SELECT id, round, warning_id, person_id,
              CASE WHEN r < 800 THEN (ARRAY['link', 'sms_reply', 'voice_key'])[r % 3 + 1] ELSE 'proxy' END,
              created_at + make_interval(secs => s), s > 180, CASE WHEN r >= 800 THEN 'phone' END
       FROM (SELECT n.*, CASE WHEN n.r < 700 THEN 15 + (n.r * 13) % 160
                              WHEN n.r < 800 THEN 181 + (n.r * 37) % 1500 ELSE 90 + n.r % 600 END AS s
             FROM (SELECT *, (id::bigint * 104729) % 1000 AS r FROM notice
                   WHERE warning_id = :w AND reason = 'primary') n) n
       WHERE r < 850""",
    """UPDATE notice n SET state = 'acknowledged', acknowledged_at = a.acknowledged_at, next_action_at = NULL,
              delivered_at = n.created_at + interval '35 seconds', step = 'done'
       FROM acknowledgment a WHERE a.notice_id = n.id AND a.round = n.round AND n.warning_id = :w""",
    """UPDATE notice SET state = CASE WHEN (id::bigint * 104729) % 1000 < 950 THEN 'timed_out' ELSE 'delivered' END,
              delivered_at = created_at + interval '35 seconds', next_action_at = NULL, attempt_count = 3
       WHERE warning_id = :w AND reason = 'primary' AND state = 'pending'""",
    # The silent were called again, twice, by voice.
    """INSERT INTO outbox (warning_id, notice_id, revision, kind, channel, address, priority, status, attempts,
                           next_attempt_at, idempotency_key, created_at, sent_at, updated_at)
       SELECT n.warning_id, n.id, 1, 'recall', 'voice', p.phone, 4, CASE WHEN k = 1 THEN 'sent' ELSE 'undelivered' END,
              1, n.created_at, 'bench:' || n.id || ':recall:' || k, n.created_at + make_interval(mins => 3 * k),
              n.created_at + make_interval(mins => 3 * k), n.created_at + make_interval(mins => 3 * k)
       FROM notice n JOIN person p ON p.id = n.person_id CROSS JOIN generate_series(1, 2) AS k
       WHERE n.warning_id = :w AND n.reason = 'primary' AND n.state IN ('timed_out', 'delivered')""",
    # Grid workers who stayed silent were escalated to their village's responsible person; half answered.
    """INSERT INTO notice (warning_id, person_id, role, region_code, reason, escalation_of, root_id, state,
                           requires_ack, round, deadline, attempt_count, step, created_at, delivered_at)
       SELECT n.warning_id, vp.id, vp.role, vp.region_code, 'escalation', n.id, n.id,
              CASE WHEN n.id % 2 = 0 THEN 'acknowledged' ELSE 'timed_out' END, true, n.round,
              n.deadline + interval '9 minutes', 0, 'done', n.deadline + interval '6 minutes', n.deadline
       FROM notice n JOIN region g ON g.code = n.region_code
       JOIN person vp ON vp.region_code = g.parent_code AND vp.role = 'village_responsible'
       WHERE n.warning_id = :w AND n.reason = 'primary' AND n.state = 'timed_out' AND g.level = 'grid'""",
    """INSERT INTO acknowledgment (notice_id, round, warning_id, person_id, path, acknowledged_at, late)
       SELECT id, round, warning_id, person_id, 'sms_reply', created_at + interval '2 minutes', false
       FROM notice WHERE warning_id = :w AND reason = 'escalation' AND state = 'acknowledged'""",
]
# What autovacuum would have done by the time anyone asks for the report.
MAINTENANCE = ["VACUUM ANALYZE notice", "VACUUM ANALYZE outbox", "VACUUM ANALYZE acknowledgment",
               "VACUUM ANALYZE region", "VACUUM ANALYZE person"]


async def ensure_warning(db: Database, url: str, *, rebuild: bool) -> int:
    """The benchmark's warning: issued once through the warnings service, outcomes played by SQL."""
    async with db.session() as s:
        # Reused only once its outcomes were played to the end (the escalations' answers come last).
        found = (await s.execute(
            select(EarlyWarning.id).where(EarlyWarning.description.like(f"%{MARK}%"), text(
                "EXISTS (SELECT 1 FROM acknowledgment a JOIN notice n ON n.id = a.notice_id "
                "WHERE n.warning_id = early_warning.id AND n.reason = 'escalation')"))
            .order_by(EarlyWarning.id.desc()))).scalar()
    if found and not rebuild:
        print(f"warning {found}: reused")
        return found
    settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    actor = Actor(name="user:zj_duty", scope_path="/33/", scope_code="33")
    data = WarningCreate(hazard=Hazard.typhoon, level=Level.red, targets=["33"],
                         description=f"超强台风预计今夜登陆浙江沿海。({MARK})")
    t0 = time.perf_counter()
    async with db.session() as s:
        result = await issue_warning(s, data=data, actor=actor, policy=load_policy(None), settings=settings,
                                     now=utcnow())
    wid = result.warning.id
    print(f"warning {wid}: issued to {result.recipient_count:,} people in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    for sql in OUTCOME_SQL:
        async with db.session() as s:
            await s.execute(text(sql), {"w": wid} if ":w" in sql else {})
    async with db.engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for sql in MAINTENANCE:
            await auto.execute(text(sql))
    print(f"outcomes played in {time.perf_counter() - t0:.1f} s")
    return wid


async def timed(fn: Callable[[], Awaitable[Any]], runs: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = await fn()
        times.append(time.perf_counter() - t0)
    return times, result


def line(label: str, times: list[float], target: float | None = None) -> str:
    best, med = min(times), statistics.median(times)
    verdict = "" if target is None else f"   target < {target:.0f} s {'met' if med < target else 'MISSED'}"
    return f"  {label:<38} median {med:6.3f} s   best {best:6.3f} s{verdict}"


async def run(url: str, *, fresh: bool, rebuild: bool, runs: int) -> None:
    from warning_service.report import export, scope, service, summary

    await ensure_zhejiang(url, fresh=fresh)
    db = Database(async_database_url(url))
    try:
        wid = await ensure_warning(db, url, rebuild=rebuild or fresh)
        async with db.session() as s:
            province = await s.get(Region, "33")
            county = await s.get(Region, "331081")
            version = (await s.execute(text("SHOW server_version"))).scalar()
            counts = (await s.execute(text(
                "SELECT (SELECT count(*) FROM notice WHERE warning_id = :w),"
                " (SELECT count(*) FROM outbox WHERE warning_id = :w),"
                " (SELECT count(*) FROM acknowledgment WHERE warning_id = :w),"
                " (SELECT count(*) FROM region)"), {"w": wid})).one()

        async def report(region: Region, rollup: str = "town") -> dict[str, Any]:
            # As the API serves it: authorisation done, then one read-only snapshot.
            async with scope.snapshot(db) as s:
                scoped = await scope.scoped_warning(s, warning_id=wid, region=region)
                return await service.warning_report(s, scoped=scoped, now=utcnow(), rollup=rollup)

        async def across() -> dict[str, Any]:
            now = utcnow()
            async with scope.snapshot(db) as s:
                from datetime import timedelta

                return await summary.summary(s, region=province, since=now - timedelta(days=30), until=now)

        async def csv_export() -> int:
            size = 0
            async with scope.snapshot(db) as s:
                scoped = await scope.scoped_warning(s, warning_id=wid, region=province)
                async for chunk in export.csv_chunks(s, scoped=scoped, rows="notices", now=utcnow()):
                    size += len(chunk)
            return size

        await report(province)  # warm the caches once, as a running server would be
        t_prov, r = await timed(lambda: report(province), runs)
        t_village, rv = await timed(lambda: report(province, "village"), max(1, runs // 2))
        t_county, rc = await timed(lambda: report(county, "grid"), runs)
        t_sum, sm = await timed(across, max(1, runs // 2))
        t_csv, size = await timed(csv_export, 1)
    finally:
        await db.dispose()
    t, tta, esc = r["totals"], r["time_to_ack"], r["escalations"]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nAudit report on a Zhejiang-wide red typhoon warning (PostgreSQL {version}; "
          f"{os.cpu_count()} CPUs, load average {load})")
    print(f"  rows: {counts[0]:,} notices, {counts[1]:,} outbox, {counts[2]:,} acknowledgments, {counts[3]:,} regions")
    print(f"  found: required {t['required']:,}, answered {t['acknowledged']:,} (on time {t['on_time']:,}, late "
          f"{t['late']:,}, proxy {t['proxy']:,}), never {t['never']:,}; rate {t['rate']:.1%}")
    print(f"         time to answer p50 {tta['p50']} s, p90 {tta['p90']} s, max {tta['max']} s; escalations "
          f"{esc['answered']:,}/{esc['fired']:,} answered; {len(r['rollup']['nodes']):,} roll-up nodes to town, "
          f"{len(rv['rollup']['nodes']):,} to village")
    print(line("full report, province, to town", t_prov, 2))
    print(line("full report, province, to village", t_village))
    print(line(f"full report, {county.name}, to grid ({rc['totals']['required']:,} req.)", t_county))
    print(line(f"summary across warnings ({len(sm['statuses']['actual']['by_region'])} towns)", t_sum))
    print(line(f"CSV export, one row per notice ({size / 1e6:.1f} MB)", t_csv))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("BENCH_REPORT_DATABASE_URL", DEFAULT_URL))
    ap.add_argument("--fresh", action="store_true", help="drop and recreate the database first")
    ap.add_argument("--rebuild", action="store_true", help="issue a new warning even if one exists")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    asyncio.run(run(args.database_url, fresh=args.fresh, rebuild=args.rebuild, runs=args.runs))


if __name__ == "__main__":
    main()
