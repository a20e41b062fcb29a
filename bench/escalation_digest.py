"""Escalation that informs, at county scale: how many messages the levels above get per sweep.

    python -m bench.escalation_digest [--database-url sqlite:///tmp/esc.db | postgresql://…/yourdb]
                                      [--towns 10] [--villages 30] [--grids 27]

One county, `towns` × `villages` villages of `grids` grids each, one responsible person per post; a red
typhoon for the whole county under a policy that reaches grid persons only; nobody answers. The fake clock
walks through the chain (re-calls, the village heads told, their re-calls, the town heads told) and after
each sweep the bench prints the escalation notices opened (one per silent person and recipient, the audit
trail) against the escalation messages queued (one per recipient and sweep), and the sweep's time.
The database named is emptied and rebuilt (use your own).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

from warning_service.actor import Actor
from warning_service.clock import utcnow
from warning_service.config import Settings, async_database_url
from warning_service.db import Database
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning.models import Hazard, Level, WarningCreate
from warning_service.early_warning.policy import load_policy
from warning_service.early_warning.service import issue_warning
from warning_service.escalation.service import sweep
from warning_service.models import metadata
from warning_service.notice.models import Notice
from warning_service.person.models import Person
from warning_service.region.models import Region

POLICY = """
[levels.red]
roles = ["grid_responsible"]
channels = ["sms"]
escalate_until = "town"
"""
ROLE = {"county": "county_responsible", "town": "town_responsible", "village": "village_responsible",
        "grid": "grid_responsible"}
COUNTY = "331081"


def tree(towns: int, villages: int, grids: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = [
        {"code": "33", "name": "浙江省", "level": "province", "parent_code": None, "path": "/33/", "depth": 0},
        {"code": "3310", "name": "台州市", "level": "city", "parent_code": "33", "path": "/33/3310/", "depth": 1},
        {"code": COUNTY, "name": "温岭市", "level": "county", "parent_code": "3310", "path": "/33/3310/331081/",
         "depth": 2}]
    for t in range(1, towns + 1):
        tc = f"{COUNTY}{t:03d}"
        tp = f"/33/3310/{COUNTY}/{tc}/"
        rows.append({"code": tc, "name": f"第{t}镇", "level": "town", "parent_code": COUNTY, "path": tp, "depth": 3})
        for v in range(1, villages + 1):
            vc = f"{tc}{v:03d}"
            vp = f"{tp}{vc}/"
            rows.append({"code": vc, "name": f"第{v}村", "level": "village", "parent_code": tc, "path": vp,
                         "depth": 4})
            rows += [{"code": f"{vc}{g:02d}", "name": f"第{v}村第{g}网格", "level": "grid", "parent_code": vc,
                      "path": f"{vp}{vc}{g:02d}/", "depth": 5} for g in range(1, grids + 1)]
    return rows


async def run(url: str, towns: int, villages: int, grids: int, batch: int) -> None:
    db = Database(async_database_url(url))
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)
    t0 = utcnow().replace(microsecond=0)
    regions = tree(towns, villages, grids)
    people = [{"region_code": r["code"], "name": f"人员{i}", "role": ROLE[str(r["level"])],
               "phone": f"+86139{i:08d}", "email": None, "active": True, "created_at": t0, "updated_at": t0}
              for i, r in enumerate(regions) if r["level"] in ROLE]
    async with db.session() as s:
        for i in range(0, len(regions), 2000):
            await s.execute(insert(Region), regions[i:i + 2000])
        for i in range(0, len(people), 2000):
            await s.execute(insert(Person), people[i:i + 2000])
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "policy.toml"
        f.write_text(POLICY, encoding="utf-8")
        settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
        async with db.session() as s:
            await issue_warning(s, data=WarningCreate(hazard=Hazard.typhoon, level=Level.red, targets=[COUNTY],
                                                      description="台风预计今夜登陆。"),
                                actor=Actor(name="user:bench", scope_path="/33/", scope_code="33"),
                                policy=load_policy(f), settings=settings, now=t0)
    silent = sum(1 for r in regions if r["level"] == "grid")
    print(f"{towns} towns × {villages} villages × {grids} grids: {silent:,d} grid persons, none answering "
          f"({url.split('://')[0]}, batch {batch})")
    # recalls: silent notices re-called; esc. messages: escalation SMS and calls queued (one per digest).
    print(f"{'minute':>6} {'claimed':>8} {'recalls':>8} {'esc. notices':>13} {'esc. messages':>14} "
          f"{'to':>14} {'seconds':>8}")
    for minute in range(3, 37, 3):
        now = t0 + timedelta(minutes=minute)
        async with db.session() as s:
            last = (await s.execute(select(func.coalesce(func.max(OutboxMessage.id), 0)))).scalar_one()
        started = time.perf_counter()
        claimed = recalls = opened = 0
        while True:
            async with db.session() as s:
                r = await sweep(s, now=now, batch_size=batch)
            claimed, recalls, opened = claimed + r.claimed, recalls + r.recalls, opened + len(
                [i for ids in r.opened.values() for i in ids])
            if r.claimed < batch or r.advanced == 0:
                break
        seconds = time.perf_counter() - started
        async with db.session() as s:
            rows = (await s.execute(
                select(Notice.role, func.count()).join(OutboxMessage, OutboxMessage.notice_id == Notice.id)
                .where(OutboxMessage.kind == "escalation", OutboxMessage.id > last)
                .group_by(Notice.role))).all()
        to = ",".join(f"{role.split('_')[0]}:{n}" for role, n in sorted(rows))
        print(f"{minute:>6} {claimed:>8,d} {recalls:>8,d} {opened:>13,d} {sum(n for _, n in rows):>14,d} {to:>14} "
              f"{seconds:>8.2f}")
    await db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary directory")
    ap.add_argument("--towns", type=int, default=10)
    ap.add_argument("--villages", type=int, default=30)
    ap.add_argument("--grids", type=int, default=27)
    ap.add_argument("--batch", type=int, default=Settings.model_fields["escalation_batch_size"].default)
    a = ap.parse_args()
    if a.database_url:
        asyncio.run(run(a.database_url, a.towns, a.villages, a.grids, a.batch))
        return
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(f"sqlite:///{tmp}/bench.db", a.towns, a.villages, a.grids, a.batch))


if __name__ == "__main__":
    main()
