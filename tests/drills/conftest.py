"""A county duty officer schedules drills and number checks for 太平街道; the worker's tick issues them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.factories import build_tree, make_user
from warning_service.actor import Actor
from warning_service.drills import service
from warning_service.drills.models import DrillCreate
from warning_service.early_warning.models import EarlyWarning

COUNTY_DUTY = Actor(name="user:wl_duty", scope_path="/33/3310/331081/", scope_code="331081")
TOWN = "331081001"  # 太平街道
HOUR = timedelta(hours=1)


@pytest.fixture
async def tree(db, clock):
    t = await build_tree(db, now=clock.now())
    for username, role, region in (("wl_duty", "duty_officer", "331081"), ("lh_duty", "duty_officer", "331082"),
                                   ("wl_audit", "auditor", "331081"), ("tp_duty", "duty_officer", TOWN)):
        await make_user(db, username=username, role=role, region=region, now=clock.now())
    return t


async def schedule(runtime, **kw) -> int:
    data = DrillCreate(region_code=kw.pop("region_code", TOWN), due_at=kw.pop("due_at", runtime.clock.now() + HOUR),
                       **kw)
    async with runtime.db.session() as s:
        drill = await service.schedule(s, data=data, actor=COUNTY_DUTY, settings=runtime.settings,
                                       now=runtime.clock.now())
        return drill.id  # type: ignore[return-value]


async def warnings_of_status(db, status: str) -> list[EarlyWarning]:
    async with db.session() as s:
        return list((await s.execute(select(EarlyWarning).where(EarlyWarning.status == status))).scalars())


async def count(db, model, *where) -> int:
    async with db.session() as s:
        return (await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one()
