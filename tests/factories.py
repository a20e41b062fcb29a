"""Factories: small region trees, people and users built straight through the services."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from warning_service.auth.service import create_user
from warning_service.db import Database
from warning_service.person import service as people
from warning_service.person.models import PersonCreate
from warning_service.region import service as regions

TREE_CSV = """code,name,level,parent_code
33,浙江省,province,
3310,台州市,city,33
331081,温岭市,county,3310
331081001,太平街道,town,331081
331081001001,横湖村,village,331081001
331081001002,西门村,village,331081001
331081002,城东街道,town,331081
331081002001,东辉村,village,331081002
331082,临海市,county,3310
331082001,古城街道,town,331082
331082001001,城中村,village,331082001
"""
PASSWORD = "password-123456"


@dataclass
class Tree:
    """Codes of the small tree, and people by region code and role."""

    people: dict[tuple[str, str], int] = field(default_factory=dict)

    def person(self, region: str, role: str) -> int:
        return self.people[(region, role)]


ROLE_BY_LEVEL = {"grid": "grid_responsible", "village": "village_responsible", "town": "town_responsible",
                 "county": "county_responsible"}


async def build_tree(db: Database, *, now: datetime, grids_per_village: int = 2, with_people: bool = True) -> Tree:
    """Two counties, three towns, four villages, N grids each, and one responsible person per region."""
    tree = Tree()
    async with db.session() as s:
        await regions.import_csv(s, path="tree.csv", raw=TREE_CSV.encode())
        await regions.add_grids(s, per_village=grids_per_village)
    if not with_people:
        return tree
    async with db.session() as s:
        from sqlalchemy import select

        from warning_service.region.models import Region

        rows = (await s.execute(select(Region.code, Region.level).order_by(Region.path))).all()
        n = 0
        for code, level in rows:
            role = ROLE_BY_LEVEL.get(level)
            if not role:
                continue
            p = await people.create(s, data=PersonCreate(region_code=code, name=f"人员{n}", role=role,
                                                        phone=f"1390000{n:04d}", email=f"p{n}@example.cn"),
                                    now=now)
            tree.people[(code, role)] = p.id  # type: ignore[assignment]
            n += 1
    return tree


async def make_user(db: Database, *, username: str, role: str, region: str, now: datetime) -> None:
    async with db.session() as s:
        await create_user(s, username=username, password=PASSWORD, role=role, region_code=region, now=now)


async def login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    r = await client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def csv_bytes(text: str, encoding: str = "utf-8", newline: str = "\n") -> bytes:
    return io.StringIO(text).getvalue().replace("\n", newline).encode(encoding)
