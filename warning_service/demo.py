"""`warning-service demo`: a real county (温岭市) with grids, people and users, on the embedded default."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from warning_service.auth.models import User
from warning_service.auth.service import create_user
from warning_service.broadcast import imports as terminals
from warning_service.broadcast.models import Terminal
from warning_service.clock import utcnow
from warning_service.config import Settings
from warning_service.db import Database
from warning_service.migrate import upgrade
from warning_service.person import service as people
from warning_service.person.models import Person
from warning_service.region import service as regions
from warning_service.region.models import Region

DATA = Path(__file__).resolve().parent / "data" / "wenling-331081.csv"
COUNTY = "331081"
DEMO_PASSWORD = "demo-pass-2026"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗郑梁谢宋唐许韩冯邓曹彭曾"
GIVEN = ["建国", "海燕", "志强", "丽华", "国庆", "晓明", "秀英", "文斌", "春梅", "永康", "玉兰", "伟东",
         "小红", "金良", "雪芳", "德胜", "美玲", "士杰", "桂英", "立新"]


def person_name(i: int) -> str:
    return SURNAMES[i % len(SURNAMES)] + GIVEN[(i // len(SURNAMES)) % len(GIVEN)]


def generated_people_csv(regions: list[tuple[str, str]], *, phone_base: int = 13_900_000_000) -> bytes:
    """One responsible person per grid/village/town/county (and a disaster information officer per village)."""
    role_for = {"grid": ["grid_responsible"], "village": ["village_responsible", "disaster_info_officer"],
                "town": ["town_responsible"], "county": ["county_responsible"]}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["region_code", "name", "role", "phone", "email"])
    n = 0
    for code, level in regions:
        for role in role_for.get(level, []):
            email = f"p{n}@demo.example.cn" if level in ("town", "county") else ""
            w.writerow([code, person_name(n), role, str(phone_base + n), email])
            n += 1
    return buf.getvalue().encode()


def generated_terminals_csv(villages: list[str]) -> bytes:
    """Two loudspeakers per village (村委会 and 文化礼堂), platform ids `WL-<village>-1/2`, for the simulator."""
    rows = ["code,name,region_code,platform_id"]
    for v in villages:
        rows += [f"{v}-1,村委会大喇叭,{v},WL-{v}-1", f"{v}-2,文化礼堂广播,{v},WL-{v}-2"]
    return ("\n".join(rows) + "\n").encode()


async def _prepare(settings: Settings) -> dict[str, Any]:
    db = Database(settings.async_database_url)
    try:
        async with db.session() as s:
            have = (await s.execute(select(func.count()).select_from(Region).where(
                Region.code.like(f"{COUNTY}%")))).scalar_one()
            if have == 0:
                await regions.import_csv(s, path=DATA)
                await regions.add_grids(s, per_village=3, under=COUNTY)
            if (await s.execute(select(func.count()).select_from(Person))).scalar_one() == 0:
                rows = (await s.execute(select(Region.code, Region.level).where(
                    Region.code.like(f"{COUNTY}%")).order_by(Region.path))).all()
                await people.import_csv(s, path="demo-people.csv", raw=generated_people_csv(rows), now=utcnow())
            if (await s.execute(select(func.count()).select_from(Terminal))).scalar_one() == 0:
                villages = list((await s.execute(select(Region.code).where(
                    Region.code.like(f"{COUNTY}%"), Region.level == "village").order_by(Region.code))).scalars())
                await terminals.import_terminals(s, name="demo-terminals.csv", raw=generated_terminals_csv(villages),
                                                 scope_path="/", now=utcnow())
            for username, role in (("duty", "duty_officer"), ("leader", "leader"), ("auditor", "auditor"),
                                   ("admin", "admin")):
                if not (await s.execute(select(User.id).where(User.username == username))).first():
                    await create_user(s, username=username, password=DEMO_PASSWORD, role=role,
                                      region_code=COUNTY, now=utcnow())
        async with db.session() as s:
            n_regions = (await s.execute(select(func.count()).select_from(Region))).scalar_one()
            n_people = (await s.execute(select(func.count()).select_from(Person))).scalar_one()
    finally:
        await db.dispose()
    return {"county": "温岭市 331081", "regions": n_regions, "people": n_people, "duty": "duty",
            "leader": "leader", "auditor": "auditor", "password": DEMO_PASSWORD, "database": settings.database_url}


class DemoRefused(RuntimeError):
    """The demo's users share a published password: never in production."""


def prepare_demo(settings: Settings) -> dict[str, Any]:
    """Migrate, then load the demo data unless it is already there (running twice reuses it)."""
    if settings.environment == "production":
        raise DemoRefused("warning-service demo refuses ENVIRONMENT=production: it creates admin, duty, leader and "
                          f"auditor users with the published password {DEMO_PASSWORD!r}. "
                          "生产环境禁止运行演示(演示账号使用公开密码)。")
    upgrade(settings.database_url)
    return asyncio.run(_prepare(settings))
