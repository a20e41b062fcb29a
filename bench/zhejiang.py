"""Build the province-scale data set: all of Zhejiang, 4 grids per village, one responsible person per post.

    python -m bench.zhejiang [--database-url postgresql://postgres@127.0.0.1:5432/ws_bench] [--fresh]

Other benchmarks import `ensure_zhejiang(url)`; it reuses the data if it is already there.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from sqlalchemy import func, select

from warning_service.clock import utcnow
from warning_service.config import async_database_url
from warning_service.db import Database
from warning_service.demo import generated_people_csv

ROOT = Path(__file__).resolve().parents[1]
DIVISIONS = ROOT / "warning_service" / "data" / "zhejiang-divisions.csv"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/ws_bench"
GRIDS_PER_VILLAGE = 4


async def recreate_database(url: str, *, drop: bool = True) -> None:
    """Create the benchmark's database (dropping it first unless `drop=False` and it exists)."""
    import asyncpg

    base, _, name = url.replace("postgresql+asyncpg://", "postgresql://").rpartition("/")
    conn = await asyncpg.connect(base + "/postgres")
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and drop:
            await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        if not exists or drop:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def ensure_zhejiang(url: str = DEFAULT_URL, *, fresh: bool = False, verbose: bool = True) -> dict[str, float]:
    """Migrate, import regions, add grids and people; returns the timings of each step (0 when reused)."""
    from warning_service.auth.models import User
    from warning_service.auth.service import create_user
    from warning_service.migrate import upgrade
    from warning_service.person import service as people
    from warning_service.person.models import Person
    from warning_service.region import service as regions
    from warning_service.region.models import Region

    def say(msg: str) -> None:
        if verbose:
            print(msg, flush=True)

    await recreate_database(url, drop=fresh)
    await asyncio.to_thread(upgrade, url)
    db = Database(async_database_url(url))
    timings = {"regions_import_s": 0.0, "add_grids_s": 0.0, "people_import_s": 0.0}
    try:
        async with db.session() as s:
            have = (await s.execute(select(func.count()).select_from(Region))).scalar_one()
        if have < 27_036:
            t0 = time.perf_counter()
            async with db.session() as s:
                r = await regions.import_csv(s, path=DIVISIONS)
            timings["regions_import_s"] = time.perf_counter() - t0
            say(f"regions import: {r.rows} rows in {timings['regions_import_s']:.2f} s")
            t0 = time.perf_counter()
            async with db.session() as s:
                n = await regions.add_grids(s, per_village=GRIDS_PER_VILLAGE)
            timings["add_grids_s"] = time.perf_counter() - t0
            say(f"add grids: {n} grids in {timings['add_grids_s']:.2f} s")
        async with db.session() as s:
            have_people = (await s.execute(select(func.count()).select_from(Person))).scalar_one()
        if have_people == 0:
            async with db.session() as s:
                rows = (await s.execute(select(Region.code, Region.level).order_by(Region.path))).all()
            raw = generated_people_csv([(r.code, r.level) for r in rows])
            t0 = time.perf_counter()
            async with db.session() as s:
                res = await people.import_csv(s, path="zhejiang-people.csv", raw=raw, now=utcnow())
            timings["people_import_s"] = time.perf_counter() - t0
            say(f"people import: {res.rows} rows in {timings['people_import_s']:.2f} s")
        async with db.session() as s:
            for username, role in (("zj_duty", "duty_officer"), ("zj_audit", "auditor")):
                if not (await s.execute(select(User.id).where(User.username == username))).first():
                    await create_user(s, username=username, password="bench-password", role=role, region_code="33",
                                      now=utcnow())
    finally:
        await db.dispose()
    return timings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--database-url", default=DEFAULT_URL)
    ap.add_argument("--fresh", action="store_true", help="drop and recreate the database first")
    args = ap.parse_args()
    asyncio.run(ensure_zhejiang(args.database_url, fresh=args.fresh))


if __name__ == "__main__":
    main()
