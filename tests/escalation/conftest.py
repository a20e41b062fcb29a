from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from tests.factories import build_tree
from warning_service.actor import Actor
from warning_service.db import Database
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning import service as warnings
from warning_service.early_warning.models import WarningCreate, WarningLift, WarningUpdate
from warning_service.early_warning.policy import PolicyBook, load_policy
from warning_service.escalation.service import SweepResult, sweep
from warning_service.notice.models import Notice
from warning_service.person.models import Person

PROVINCE = Actor(name="user:test", scope_path="/33/", scope_code="33")
GRID = "33108100100101"        # 横湖村第1网格
NEIGHBOUR = "33108100100102"   # 横湖村第2网格
VILLAGE = "331081001001"       # 横湖村
TOWN = "331081001"             # 太平街道
COUNTY = "331081"              # 温岭市

# Red as the built-in policy has it, but only SMS at once and escalation no higher than the town.
TOWN_TOP_POLICY = """
[levels.red]
channels = ["sms"]
escalate_until = "town"
"""


@pytest.fixture
async def tree(db, clock):
    return await build_tree(db, now=clock.now())


@pytest.fixture
def town_top(tmp_path: Path) -> PolicyBook:
    f = tmp_path / "policy.toml"
    f.write_text(TOWN_TOP_POLICY, encoding="utf-8")
    return load_policy(f)


async def issue(db: Database, settings, clock, *, targets: list[str], policy: PolicyBook | None = None,
                level: str = "red", hazard: str = "typhoon", **extra) -> int:
    data = WarningCreate(hazard=hazard, level=level, description="台风“烟花”预计今夜登陆,最大风力14级。",
                         targets=targets, **extra)
    async with db.session() as s:
        result = await warnings.issue_warning(s, data=data, actor=PROVINCE, settings=settings, now=clock.now(),
                                              policy=policy or load_policy(None))
        return result.warning.id  # type: ignore[return-value]


async def lift(db: Database, clock, warning_id: int) -> None:
    async with db.session() as s:
        await warnings.lift_warning(s, warning_id=warning_id, data=WarningLift(reason="台风已减弱"), actor=PROVINCE,
                                    now=clock.now())


async def upgrade(db: Database, settings, clock, warning_id: int, *, level: str, policy: PolicyBook) -> None:
    async with db.session() as s:
        await warnings.update_warning(s, warning_id=warning_id, data=WarningUpdate(level=level),
                                      actor=PROVINCE, policy=policy, settings=settings, now=clock.now())


@dataclass
class Totals:
    batches: int = 0
    claimed: int = 0
    recalls: int = 0
    deputies: int = 0
    escalated: int = 0
    timed_out: int = 0
    duty_room: int = 0
    duty_watch: int = 0
    opened: list[int] = field(default_factory=list)
    opened_by: dict[int, list[int]] = field(default_factory=dict)

    def add(self, r: SweepResult) -> None:
        self.batches += 1
        for k in ("claimed", "recalls", "deputies", "escalated", "timed_out", "duty_room", "duty_watch"):
            setattr(self, k, getattr(self, k) + getattr(r, k))
        self.opened += [i for ids in r.opened.values() for i in ids]
        for silent, ids in r.opened.items():
            self.opened_by.setdefault(silent, []).extend(ids)

    def opened_for(self, silent_id: int) -> list[int]:
        return self.opened_by.get(silent_id, [])


async def run_sweeps(db: Database, now: datetime, *, batch_size: int = 100) -> Totals:
    """What one escalation tick does after expiry: sweep batches until the due set is drained."""
    t = Totals()
    async with asyncio.timeout(120):  # a sweep that kept claiming would be a bug, not a long queue
        while True:
            async with db.session() as s:
                r = await sweep(s, now=now, batch_size=batch_size)
            t.add(r)
            if r.claimed < batch_size or r.advanced == 0:
                return t


async def notice_for(db: Database, warning_id: int, person_id: int, reason: str = "primary") -> Notice:
    async with db.session() as s:
        return (await s.execute(select(Notice).where(
            Notice.warning_id == warning_id, Notice.person_id == person_id, Notice.reason == reason))
        ).scalar_one()


async def reload(db: Database, notice_id: int) -> Notice:
    async with db.session() as s:
        return (await s.execute(select(Notice).where(Notice.id == notice_id))).scalar_one()


async def messages(db: Database, notice_id: int, *kinds: str) -> list[OutboxMessage]:
    async with db.session() as s:
        q = select(OutboxMessage).where(OutboxMessage.notice_id == notice_id).order_by(OutboxMessage.id)
        if kinds:
            q = q.where(OutboxMessage.kind.in_(kinds))
        return list((await s.execute(q)).scalars())


async def count(db: Database, model, *where) -> int:
    async with db.session() as s:
        return (await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def add_people(db: Database, *, region: str, n: int, now: datetime,
                     role: str = "grid_responsible") -> None:
    """Many responsible persons in one region, inserted in bulk (phones 170xxxxxxxx)."""
    rows = [{"region_code": region, "name": f"网格员{i}", "role": role, "phone": f"+86170{i:08d}",
             "email": None, "active": True, "created_at": now, "updated_at": now} for i in range(n)]
    async with db.session() as s:
        for i in range(0, n, 2000):
            await s.execute(insert(Person), rows[i:i + 2000])


async def set_deputy(db: Database, person_id: int, deputy_id: int) -> None:
    async with db.session() as s:
        (await s.get(Person, person_id)).deputy_id = deputy_id  # type: ignore[union-attr]


MIN = timedelta(minutes=1)


async def at(db, clock, t0, minutes: float):
    """Move the fake clock to `minutes` after t0 and sweep until nothing more is due."""
    clock.set(t0 + minutes * MIN)
    return await run_sweeps(db, clock.now())
