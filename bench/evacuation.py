"""A county's 转移避险: 5,000 danger zones, 20,000 households, 200 shelters — what opening their tasks adds to
issuing a red 山洪 warning, and how long the 转移 report takes.

    python -m bench.evacuation [--database-url postgresql://postgres@127.0.0.1:5432/ws_evac] [--rounds 3]

Builds a synthetic county (20 towns, 250 villages, 4 grids each, a responsible person per post), imports the
registers through the same import code as the API, then issues the same warning alternately with the zones
deactivated and active (same run, same tables), and prints the medians. The database is dropped and recreated.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

from sqlalchemy import event, insert, select, text, update

from bench.zhejiang import recreate_database
from warning_service.actor import Actor
from warning_service.clock import utcnow
from warning_service.config import Settings, async_database_url
from warning_service.db import Database
from warning_service.early_warning.models import EarlyWarning, Hazard, Level, WarningCreate, WarningLift
from warning_service.early_warning.policy import load_policy
from warning_service.early_warning.service import issue_warning, lift_warning
from warning_service.evacuation import imports, report
from warning_service.evacuation.models import DangerZone, EvacuationTask
from warning_service.migrate import upgrade
from warning_service.person.models import Person
from warning_service.region import service as regions

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/ws_evac"
COUNTY = "339901"
TOWNS, VILLAGES_PER_TOWN, GRIDS = 20, 13, 4
ZONES, HOUSEHOLDS, SHELTERS = 5000, 20000, 200
ACTOR = Actor(name="user:bench", scope_path=f"/33/3399/{COUNTY}/", scope_code=COUNTY)


def tree_csv() -> str:
    lines = [
        "code,name,level,parent_code",
        "33,浙江省,province,",
        "3399,基准市,city,33",
        f"{COUNTY},基准县,county,3399",
    ]
    for t in range(1, TOWNS + 1):
        town = f"{COUNTY}{t:03d}"
        lines.append(f"{town},第{t}镇,town,{COUNTY}")
        for v in range(1, VILLAGES_PER_TOWN + 1):
            lines.append(f"{town}{v:03d},第{t}镇{v}村,village,{town}")
    return "\n".join(lines) + "\n"


async def build(db: Database) -> dict[str, float]:
    now = utcnow()
    out = {}
    async with db.session() as s:
        await regions.import_csv(s, path="county.csv", raw=tree_csv().encode())
        await regions.add_grids(s, per_village=GRIDS)
        rows = (
            await s.execute(
                text("SELECT code, level FROM region WHERE level IN ('county','town','village','grid') ORDER BY code")
            )
        ).all()
        role = {
            "county": "county_responsible",
            "town": "town_responsible",
            "village": "village_responsible",
            "grid": "grid_responsible",
        }
        people = [
            {
                "region_code": c,
                "name": f"责任人{i}",
                "role": role[lv],
                "phone": f"+86139{i:08d}",
                "email": None,
                "active": True,
                "created_at": now,
                "updated_at": now,
            }
            for i, (c, lv) in enumerate(rows)
        ]
        for i in range(0, len(people), 2000):
            await s.execute(insert(Person), people[i : i + 2000])
    async with db.session() as s:
        keepers = (
            await s.execute(
                select(Person.id, Person.region_code).where(Person.role == "grid_responsible").order_by(Person.id)
            )
        ).all()
        towns = (await s.execute(text("SELECT code FROM region WHERE level = 'town' ORDER BY code"))).scalars().all()
    rnd = random.Random(15)
    zl = ["code,name,kind,region_code,thresholds,note"]
    zone_grid = []
    for z in range(ZONES):
        pid, grid = keepers[z % len(keepers)]
        # Most zones clear on red 山洪; a fifth only for 暴雨 or 台风 (they must not be reached).
        th = (
            rnd.choice(["山洪:红", "山洪:橙;台风:橙", "山洪:黄", "山洪:红;地质灾害:橙"]) if z % 5 else "暴雨:红;台风:橙"
        )
        zl.append(f"Z{z},危险区{z},{rnd.choice(['山洪危险区', '地质灾害隐患点', '危旧房', '低洼易涝区'])},{grid},{th},")
        zone_grid.append(pid)
    hl = ["code,zone_code,name,people,phone,vulnerable,keeper"]
    for h in range(HOUSEHOLDS):
        z = h % ZONES
        hl.append(
            f"H{h},Z{z},户主{h},{rnd.randint(1, 6)},1370{h:07d},{rnd.choice(['', '', '老人', '儿童', '残疾'])},"
            f"{zone_grid[z]}"
        )
    sl = ["code,name,region_code,capacity,manager,address"]
    for i in range(SHELTERS):
        sl.append(f"S{i},安置点{i},{towns[i % len(towns)]},{rnd.randint(100, 800)},,")
    async with db.session() as s:
        for register, lines in (("zones", zl), ("households", hl), ("shelters", sl)):
            t0 = time.perf_counter()
            res = await imports.import_register(
                s,
                register=register,
                name=f"{register}.csv",
                raw=("\n".join(lines) + "\n").encode(),
                scope_path=ACTOR.scope_path,
                now=now,
            )
            out[f"import_{register}"] = time.perf_counter() - t0
            out[f"rows_{register}"] = res.rows
    async with db.session() as s:
        await s.execute(text("ANALYZE"))
    return out


class Profile:
    """Time per SQL statement (first line, truncated) while `on`, and the commit (deferred checks run there)."""

    def __init__(self, db: Database) -> None:
        self.on, self.times, self.counts, self._t0 = False, {}, {}, 0.0
        self.commit = 0.0
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._before)
        event.listen(db.engine.sync_engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, params, context, executemany):  # noqa: ANN001
        self._t0 = time.perf_counter()

    def _after(self, conn, cursor, statement, params, context, executemany):  # noqa: ANN001
        if self.on:
            flat = " ".join(statement.split())
            # A statement that starts with a CTE is named by what it writes.
            head = next((flat[i : i + 40] for w in ("INSERT INTO", "UPDATE ") if (i := flat.find(w)) > 0), "")
            key = f"{flat[:70]} … {head}" if flat.startswith("WITH") else flat[:110]
            self.times[key] = self.times.get(key, 0.0) + time.perf_counter() - self._t0
            self.counts[key] = self.counts.get(key, 0) + 1

    def report(self, total: float) -> None:
        print(f"\n  per-statement profile of one issue with zones (total {total:.3f} s, commit {self.commit:.3f} s):")
        for key, t in sorted(self.times.items(), key=lambda kv: -kv[1])[:14]:
            print(f"    {t:7.3f} s  x{self.counts[key]:<3d} {key}")


async def issue(db: Database, settings: Settings, profile: Profile | None = None) -> tuple[int, float]:
    data = WarningCreate(
        hazard=Hazard.mountain_torrent,
        level=Level.red,
        targets=[COUNTY],
        description="预计未来3小时山区降雨150毫米以上,发生山洪可能性很大。",
    )
    t0 = time.perf_counter()
    if profile:
        profile.on = True
    async with db.session() as s:
        result = await issue_warning(
            s, data=data, actor=ACTOR, policy=load_policy(None), settings=settings, now=utcnow()
        )
        t1 = time.perf_counter()
    if profile:
        profile.on, profile.commit = False, time.perf_counter() - t1
    return result.warning.id, time.perf_counter() - t0  # type: ignore[return-value]


async def lift(db: Database, wid: int) -> None:
    async with db.session() as s:
        await lift_warning(s, warning_id=wid, data=WarningLift(reason="山洪风险解除"), actor=ACTOR, now=utcnow())


async def zones_active(db: Database, active: bool) -> None:
    async with db.session() as s:
        await s.execute(update(DangerZone).values(active=active))


async def run(url: str, rounds: int, with_profile: bool, with_xlsx: bool) -> None:
    await recreate_database(url)
    await asyncio.to_thread(upgrade, url)
    db = Database(async_database_url(url))
    settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    t0 = time.perf_counter()
    built = await build(db)
    build_s = time.perf_counter() - t0
    without, with_, tasks, keeper_notices, evac_sms = [], [], 0, 0, 0
    last = 0
    profile = Profile(db) if with_profile else None
    for i in range(rounds):
        await zones_active(db, False)
        wid, s = await issue(db, settings)
        without.append(s)
        await lift(db, wid)
        await zones_active(db, True)
        last, s = await issue(db, settings, profile if i == rounds - 1 else None)
        with_.append(s)
        async with db.session() as ses:
            tasks = (
                await ses.execute(text("SELECT count(*) FROM evacuation_task WHERE warning_id = :w"), {"w": last})
            ).scalar_one()
            keeper_notices = (
                await ses.execute(
                    text("SELECT count(*) FROM notice WHERE warning_id = :w AND reason = 'evacuation'"), {"w": last}
                )
            ).scalar_one()
            evac_sms = (
                await ses.execute(
                    text("SELECT count(*) FROM outbox WHERE warning_id = :w AND kind IN ('evacuation','evac_shelter')"),
                    {"w": last},
                )
            ).scalar_one()
        await lift(db, last)
    # Decisions of a busy night on the last warning, then the report over it.
    async with db.session() as s:
        await s.execute(
            text(
                "UPDATE evacuation_task SET status = (ARRAY['moved','with_relatives','refused',"
                "'unreachable','pending'])[1 + id % 5], people_moved = CASE WHEN id % 5 < 2 THEN 2 END, "
                "shelter_id = CASE WHEN id % 5 = 0 THEN (SELECT min(id) FROM shelter) + id % 200 END, "
                "returned_early = (id % 97 = 0) WHERE warning_id = :w"
            ),
            {"w": last},
        )
        await s.execute(text("ANALYZE evacuation_task"))
    async with db.session() as s:
        warning = await s.get(EarlyWarning, last)
        t0 = time.perf_counter()
        b = await report.board(s, warning=warning, scope_path=ACTOR.scope_path, now=utcnow())  # type: ignore[arg-type]
        board_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        csv_bytes = await report.csv_export(s, warning_id=last, scope_path=ACTOR.scope_path)
        csv_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        xlsx_bytes = (
            await report.xlsx_export(s, warning=warning, scope_path=ACTOR.scope_path, now=utcnow())  # type: ignore[arg-type]
            if with_xlsx
            else b""
        )
        xlsx_s = time.perf_counter() - t0
        version = (await s.execute(text("SHOW server_version"))).scalar()
        n_tasks = (await s.execute(select(EvacuationTask.id).where(EvacuationTask.warning_id == last))).all()
    await db.dispose()
    w, z = statistics.median(without), statistics.median(with_)
    print(f"\n转移避险 on a county (PostgreSQL {version}), {rounds} rounds, medians")
    print(f"  county built (regions, people, registers)  {build_s:8.2f} s")
    for reg in ("zones", "households", "shelters"):
        print(f"  import {reg:<12} {int(built['rows_' + reg]):>7,d} rows     {built['import_' + reg]:8.2f} s")
    print(f"  tasks opened per warning          {tasks:9,d}  (of {HOUSEHOLDS:,d} households)")
    print(f"  keeper notices (one per 包户责任人)  {keeper_notices:9,d}   evacuation SMS queued {evac_sms:,d}")
    print(f"  issue without zones (median)      {w:9.3f} s   {[f'{x:.3f}' for x in without]}")
    print(f"  issue with zones (median)         {z:9.3f} s   {[f'{x:.3f}' for x in with_]}")
    print(
        f"  added by evacuation               {100 * (z - w) / w:8.1f} %   target ≤ 50 %: "
        f"{'met' if z <= 1.5 * w else 'MISSED'}"
    )
    # On a shared machine the fastest round is the one least disturbed by others.
    wmin, zmin = min(without), min(with_)
    print(f"  fastest rounds: without {wmin:.3f} s, with {zmin:.3f} s: added {100 * (zmin - wmin) / wmin:.1f} %")
    print(
        f"  转移 board (JSON), {len(n_tasks):,d} tasks     {board_s:9.3f} s   target ≤ 1 s: "
        f"{'met' if board_s <= 1 else 'MISSED'}  (worst town: {b['by_town'][0]['name']})"
    )
    print(f"  转移 report CSV ({len(csv_bytes) / 1e6:.1f} MB)          {csv_s:9.3f} s")
    print(f"  转移 report XLSX ({len(xlsx_bytes) / 1e6:.1f} MB)         {xlsx_s:9.3f} s")
    if profile:
        profile.report(with_[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--database-url", default=DEFAULT_URL)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="time each statement of the last issue with zones")
    ap.add_argument("--no-xlsx", action="store_true", help="skip the workbook (slow, not what the figure is about)")
    args = ap.parse_args()
    asyncio.run(run(args.database_url, args.rounds, args.profile, not args.no_xlsx))


if __name__ == "__main__":
    main()
