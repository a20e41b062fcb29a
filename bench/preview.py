"""Province-scale preview: the dry run of a Zhejiang-wide red typhoon warning, timed, then the real issue.

    python -m bench.preview [--database-url postgresql://postgres@127.0.0.1:5432/ws_bench] [--fresh] [--runs 5]

Prints the preview's time (median and worst of --runs, each in its own transaction), the rows it left behind
(must be 0), and the issue's time and recipient count, which must equal the preview's count.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from sqlalchemy import func, select, text

from bench.zhejiang import DEFAULT_URL, ensure_zhejiang
from warning_service.actor import Actor
from warning_service.clock import utcnow
from warning_service.config import Settings, async_database_url
from warning_service.db import Database
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning.models import EarlyWarning, Hazard, Level, WarningCreate
from warning_service.early_warning.policy import load_policy
from warning_service.early_warning.preview import preview_issue
from warning_service.early_warning.service import issue_warning
from warning_service.notice.models import Notice


async def counts(db: Database) -> tuple[int, int, int]:
    async with db.session() as s:
        return tuple([(await s.execute(select(func.count()).select_from(m))).scalar_one()  # type: ignore[return-value]
                      for m in (EarlyWarning, Notice, OutboxMessage)])


async def run(url: str, fresh: bool, runs: int) -> None:
    await ensure_zhejiang(url, fresh=fresh)
    db = Database(async_database_url(url))
    settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    policy = load_policy(None)
    actor = Actor(name="user:zj_duty", scope_path="/33/", scope_code="33")
    data = WarningCreate(hazard=Hazard.typhoon, level=Level.red, description="超强台风预计今夜登陆浙江沿海。",
                         targets=["33"])
    before = await counts(db)
    times, preview = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        async with db.session() as s:
            preview = await preview_issue(s, data=data, actor=actor, policy=policy, settings=settings, now=utcnow())
        times.append(time.perf_counter() - t0)
    left = tuple(a - b for a, b in zip(await counts(db), before, strict=True))
    t0 = time.perf_counter()
    async with db.session() as s:
        result = await issue_warning(s, data=data, actor=actor, policy=policy, settings=settings, now=utcnow())
    issue_s = time.perf_counter() - t0
    async with db.session() as s:
        version = (await s.execute(text("SHOW server_version"))).scalar()
    await db.dispose()
    assert preview is not None
    sms = next(t for t in preview.texts if t.channel == "sms")
    print(f"\nZhejiang-wide red typhoon: preview vs issue (PostgreSQL {version})")
    print(f"  preview recipient_count         {preview.recipient_count:9,d}   ({len(preview.by_town):,d} towns, "
          f"{len(preview.by_role)} roles)")
    print(f"  preview time, median of {runs}       {statistics.median(times):9.3f} s   (worst {max(times):.3f} s)")
    print(f"  rows left by {runs} previews          {sum(left):9d}   (warnings, notices, outbox)")
    print(f"  SMS preview                     {sms.chars:9d} chars, {sms.segments} segments")
    print(f"  issue recipient_count           {result.recipient_count:9,d}   "
          f"({'equal' if result.recipient_count == preview.recipient_count else 'DIFFERENT'})")
    print(f"  issue, committed                {issue_s:9.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--database-url", default=DEFAULT_URL)
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    asyncio.run(run(args.database_url, args.fresh, args.runs))


if __name__ == "__main__":
    main()
