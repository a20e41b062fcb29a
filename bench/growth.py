"""Growth of the issue and of its revisions, town → county → city → province, on a fresh install and with
normal statistics: a plan that goes quadratic on a table the planner believes empty shows here.

    python -m bench.growth [--database-url postgresql://postgres@127.0.0.1:5432/ws_bench_growth]

Builds (or reuses) the province (bench.zhejiang). Two conditions, in one run:

- **fresh**: before each step every warning is removed (TRUNCATE early_warning CASCADE) and the database
  vacuumed and analyzed, so PostgreSQL believes `notice` and `outbox` hold no rows — a fresh install after
  VACUUM ANALYZE, autovacuum or a restore. Then the warning is issued.
- **normal**: the tables hold the earlier warnings' rows and are analyzed before each step.

Then the revisions on fresh statistics and on normal ones: a city warning widened to the province
(update with new targets: new notices for the rest, update messages for the others), upgraded (a new round
for every notice) and updated (new text: an update message to everyone).

Prints the time per notice of each step and condition, and a bare COPY of the province's notice and outbox
rows. Exits non-zero if a step's time per notice is more than 2× the step below's, the fresh province
takes more than 2× the normal one or more than 5× the bare COPY, or a fresh revision more than 2× the normal.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass

from sqlalchemy import func, select, text

from bench.issue import bare_copy
from bench.zhejiang import ensure_zhejiang
from warning_service.actor import Actor
from warning_service.clock import utcnow
from warning_service.config import Settings, async_database_url
from warning_service.db import Database
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning.models import Hazard, Level, WarningCreate, WarningUpdate
from warning_service.early_warning.policy import load_policy
from warning_service.early_warning.service import issue_warning, update_warning
from warning_service.logging import configure_logging
from warning_service.notice.models import Notice

DEFAULT_URL = os.environ.get("BENCH_GROWTH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/ws_bench_growth")
STEPS = [("town", "331081001"), ("county", "331081"), ("city", "3310"), ("province", "33")]
ACTOR = Actor(name="user:zj_duty", scope_path="/33/", scope_code="33")
TABLES = ("notice", "outbox", "delivery_attempt", "ledger", "ledger_pending", "evacuation_task", "special_notice")
STEP_FACTOR, FRESH_FACTOR, COPY_FACTOR = 2.0, 2.0, 5.0


@dataclass
class Timed:
    name: str
    seconds: float
    notices: int
    outbox: int

    @property
    def per_notice_us(self) -> float:
        return self.seconds / max(1, self.notices) * 1e6


class Bench:
    def __init__(self, url: str) -> None:
        self.db = Database(async_database_url(url))
        self.settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
        self.policy = load_policy(None)

    async def maintenance(self, *statements: str) -> None:
        async with self.db.engine.connect() as c:
            auto = await c.execution_options(isolation_level="AUTOCOMMIT")
            for sql in statements:
                await auto.execute(text(sql))

    async def fresh(self) -> None:
        """No warning at all, and statistics that say so."""
        await self.maintenance("TRUNCATE early_warning CASCADE", "VACUUM ANALYZE")

    async def autovacuum(self, *, on: bool) -> None:
        """Off while the bench runs: an autovacuum analyze mid-run would make a "fresh" step less fresh."""
        await self.maintenance(*(f"ALTER TABLE {t} SET (autovacuum_enabled = {str(on).lower()})" for t in TABLES))

    async def analyzed(self) -> None:
        await self.maintenance("ANALYZE")

    async def counts(self, wid: int) -> tuple[int, int]:
        async with self.db.session() as s:
            n = (await s.execute(select(func.count()).select_from(Notice).where(Notice.warning_id == wid))
                 ).scalar_one()
            o = (await s.execute(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.warning_id == wid))).scalar_one()
        return n, o

    async def issue(self, code: str, level: Level = Level.red) -> tuple[int, float]:
        data = WarningCreate(hazard=Hazard.typhoon, level=level, targets=[code],
                             description="超强台风预计今夜登陆浙江沿海。(bench.growth)")
        t0 = time.perf_counter()
        async with self.db.session() as s:
            result = await issue_warning(s, data=data, actor=ACTOR, policy=self.policy, settings=self.settings,
                                         now=utcnow())
        return result.warning.id, time.perf_counter() - t0

    async def update(self, wid: int, data: WarningUpdate) -> float:
        t0 = time.perf_counter()
        async with self.db.session() as s:
            await update_warning(s, warning_id=wid, data=data, actor=ACTOR, policy=self.policy,
                                 settings=self.settings, now=utcnow())
        return time.perf_counter() - t0

    async def steps(self, *, fresh: bool) -> list[Timed]:
        out = []
        for name, code in STEPS:
            await (self.fresh() if fresh else self.analyzed())
            wid, seconds = await self.issue(code)
            out.append(Timed(name, seconds, *await self.counts(wid)))
            print(f"  {'fresh' if fresh else 'normal'} {name:9s} {out[-1].notices:8,d} notices "
                  f"{seconds:8.2f} s", flush=True)
        return out

    async def revisions(self, *, fresh: bool) -> list[Timed]:
        """City (orange) → widened to the province → upgraded to red → new text; statistics as at the issue."""
        await (self.fresh() if fresh else self.analyzed())
        wid, _ = await self.issue("3310", Level.orange)
        if not fresh:
            await self.analyzed()
        out = []
        for name, data in (
            ("widen city→province", WarningUpdate(targets=["33"], reason="台风路径北移")),
            ("upgrade orange→red", WarningUpdate(level=Level.red, reason="风力增强")),
            ("update text", WarningUpdate(description="台风登陆时间提前至今夜20时。", reason="登陆时间提前")),
        ):
            seconds = await self.update(wid, data)
            out.append(Timed(name, seconds, *await self.counts(wid)))
            print(f"  {'fresh' if fresh else 'normal'} {name:22s} {out[-1].notices:8,d} notices "
                  f"{seconds:8.2f} s", flush=True)
        return out

    async def version(self) -> str:
        async with self.db.session() as s:
            return str((await s.execute(text("SHOW server_version"))).scalar())


def table(title: str, fresh: list[Timed], normal: list[Timed]) -> None:
    print(f"\n{title}")
    print(f"  {'step':22s} {'notices':>9s} {'outbox':>9s} | {'fresh s':>8s} {'µs/notice':>9s} | "
          f"{'normal s':>8s} {'µs/notice':>9s} | fresh/normal")
    for f, n in zip(fresh, normal, strict=True):
        print(f"  {f.name:22s} {f.notices:9,d} {f.outbox:9,d} | {f.seconds:8.2f} {f.per_notice_us:9.1f} | "
              f"{n.seconds:8.2f} {n.per_notice_us:9.1f} | {f.seconds / n.seconds:6.2f} x")


def verdicts(fresh: list[Timed], normal: list[Timed], revs_fresh: list[Timed], revs_normal: list[Timed],
             copy_s: float) -> list[str]:
    missed = []
    for label, series in (("fresh", fresh), ("normal", normal)):
        for below, step in zip(series, series[1:], strict=False):
            if step.per_notice_us > STEP_FACTOR * below.per_notice_us:
                missed.append(f"{label} {step.name}: {step.per_notice_us:.1f} µs/notice > {STEP_FACTOR:g} × "
                              f"{below.name}'s {below.per_notice_us:.1f}")
    province_fresh, province_normal = fresh[-1], normal[-1]
    if province_fresh.seconds > FRESH_FACTOR * province_normal.seconds:
        missed.append(f"fresh province {province_fresh.seconds:.2f} s > {FRESH_FACTOR:g} × normal "
                      f"{province_normal.seconds:.2f} s")
    if province_fresh.seconds > COPY_FACTOR * copy_s:
        missed.append(f"fresh province {province_fresh.seconds:.2f} s > {COPY_FACTOR:g} × bare COPY {copy_s:.2f} s")
    for f, n in zip(revs_fresh, revs_normal, strict=True):
        if f.seconds > FRESH_FACTOR * n.seconds:
            missed.append(f"fresh {f.name} {f.seconds:.2f} s > {FRESH_FACTOR:g} × normal {n.seconds:.2f} s")
    return missed


async def run(url: str) -> int:
    configure_logging("WARNING")
    await ensure_zhejiang(url)
    b = Bench(url)
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        await b.autovacuum(on=False)
        print(f"PostgreSQL {await b.version()}; {os.cpu_count()} CPUs, load average {load} at the start", flush=True)
        fresh = await b.steps(fresh=True)
        normal = await b.steps(fresh=False)
        revs_fresh = await b.revisions(fresh=True)
        revs_normal = await b.revisions(fresh=False)
        province = fresh[-1]
        copy_s = await bare_copy(b.db, province.notices, province.outbox)
        await b.autovacuum(on=True)
    finally:
        await b.db.dispose()
    table("Issue, town → province (time of the committed issue: notices, outbox rows, ledger)", fresh, normal)
    print(f"  bare COPY of the province's {province.notices:,} notices + {province.outbox:,} outbox rows: "
          f"{copy_s:.2f} s; fresh province / COPY {province.seconds / copy_s:.1f} x")
    table("Revisions of a city warning widened to the province (statistics as at its issue)", revs_fresh,
          revs_normal)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average at the end: {load}")
    missed = verdicts(fresh, normal, revs_fresh, revs_normal, copy_s)
    for m in missed:
        print(f"MISSED: {m}")
    print("goals " + ("MISSED" if missed else "met") + f": each step ≤ {STEP_FACTOR:g}× the per-notice time of "
          f"the step below; fresh ≤ {FRESH_FACTOR:g}× normal; fresh province ≤ {COPY_FACTOR:g}× bare COPY")
    return 1 if missed else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=DEFAULT_URL)
    args = ap.parse_args()
    sys.exit(asyncio.run(run(args.database_url)))


if __name__ == "__main__":
    main()
