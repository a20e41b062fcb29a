"""A 温岭 town (太平街道) with danger zones, households, a shelter, a special person and a special place."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from tests.console.conftest import chromium, served  # noqa: F401 — the console's browser harness
from tests.factories import build_tree, login, make_user
from warning_service.actor import Actor
from warning_service.early_warning import service as warnings
from warning_service.early_warning.models import WarningCreate, WarningLift
from warning_service.evacuation.models import EvacuationTask, Household
from warning_service.notice.tokens import link_key, make_token

PROVINCE = Actor(name="user:test", scope_path="/33/", scope_code="33")
TOWN = "331081001"  # 太平街道: 横湖村 331081001001, 西门村 331081001002
HENGHU, XIMEN, DONGHUI = "331081001001", "331081001002", "331081002001"

ZONES_CSV = """code,name,kind,region_code,thresholds,note
Z1,横湖村后山山洪危险区,山洪危险区,331081001001,山洪:红,
Z2,西门村危旧房片区,危旧房,33108100100201,台风:橙;山洪:橙,沿溪老屋
Z3,横湖村低洼区,低洼易涝区,331081001001,暴雨:红,
Z4,东辉村山洪危险区,山洪危险区,331081002001,山洪:黄,
"""


def households_csv(keeper_henghu: int, keeper_ximen: int, keeper_donghui: int) -> str:
    return f"""code,zone_code,name,people,phone,vulnerable,keeper
H1,Z1,王大伯,3,13700000001,老人,{keeper_henghu}
H2,Z1,李阿婆,1,,老人、独居,{keeper_henghu}
H3,Z2,陈家,4,13700000003,儿童,{keeper_ximen}
H4,Z3,赵家,2,,,{keeper_henghu}
H5,Z4,钱家,5,,,{keeper_donghui}
"""


def xlsx(rows: list[list[object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    for r in rows:
        ws.append(r)
    bio = io.BytesIO()
    wb.save(bio)
    return bio.getvalue()


@dataclass
class Town:
    people: dict[str, int] = field(default_factory=dict)
    shelter_id: int = 0


@pytest.fixture
async def tree(db, clock):
    t = await build_tree(db, now=clock.now())
    for username, role, region in (
        ("wl_duty", "duty_officer", "331081"),
        ("lh_duty", "duty_officer", "331082"),
        ("wl_audit", "auditor", "331081"),
    ):
        await make_user(db, username=username, role=role, region=region, now=clock.now())
    return t


@pytest.fixture
async def duty(client, tree):
    return await login(client, "wl_duty")


async def upload(client, headers, register: str, name: str, data: bytes):
    return await client.post(
        f"/api/v1/evacuation/registers/{register}/import", headers=headers, files={"file": (name, data)}
    )


@pytest.fixture
async def town(client, duty, tree) -> Town:
    """The registers imported through the API, as a county office would."""
    keepers = (
        tree.person(HENGHU, "village_responsible"),
        tree.person(XIMEN, "village_responsible"),
        tree.person(DONGHUI, "village_responsible"),
    )
    r = await upload(client, duty, "zones", "zones.csv", ZONES_CSV.encode())
    assert r.status_code == 200, r.text
    r = await upload(client, duty, "households", "households.csv", households_csv(*keepers).encode())
    assert r.status_code == 200, r.text
    manager = tree.person(TOWN, "town_responsible")
    r = await upload(
        client,
        duty,
        "shelters",
        "shelters.xlsx",
        xlsx(
            [
                ["code", "name", "region_code", "capacity", "manager", "address"],
                ["S1", "太平街道中心小学避灾安置点", TOWN, 6, manager, "太平街道学前路1号"],
            ]
        ),
    )
    assert r.status_code == 200, r.text
    r = await upload(
        client,
        duty,
        "special_people",
        "special_people.csv",
        (
            "code,name,category,region_code,phone,helper,thresholds,note\n"
            f"P1,周奶奶,独居老人,{XIMEN},,{keepers[1]},山洪:橙,行动不便\n"
        ).encode(),
    )
    assert r.status_code == 200, r.text
    r = await upload(
        client,
        duty,
        "special_places",
        "special_places.csv",
        (
            "code,name,category,region_code,contact,thresholds,note\n"
            f"L1,太平中心小学,学校,{TOWN},{manager},山洪:红;暴雨:橙,\n"
            f"L2,东辉养老院,养老院,{DONGHUI},{keepers[2]},山洪:黄,\n"
        ).encode(),
    )
    assert r.status_code == 200, r.text
    listed = await client.get("/api/v1/evacuation/registers/shelters", headers=duty)
    return Town(
        people={"henghu": keepers[0], "ximen": keepers[1], "donghui": keepers[2], "manager": manager},
        shelter_id=listed.json()["items"][0]["id"],
    )


async def issue(runtime, *, targets: list[str], hazard: str = "mountain_torrent", level: str = "red") -> int:
    data = WarningCreate(
        hazard=hazard, level=level, description="预计未来3小时山区降雨100毫米以上,山洪风险极高。", targets=targets
    )
    async with runtime.db.session() as s:
        result = await warnings.issue_warning(
            s, data=data, actor=PROVINCE, policy=runtime.policy, settings=runtime.settings, now=runtime.clock.now()
        )
        return result.warning.id  # type: ignore[return-value]


async def lift(runtime, warning_id: int) -> None:
    async with runtime.db.session() as s:
        await warnings.lift_warning(
            s, warning_id=warning_id, data=WarningLift(reason="山洪风险解除"), actor=PROVINCE, now=runtime.clock.now()
        )


async def tasks_by_household(db, warning_id: int) -> dict[str, EvacuationTask]:
    async with db.session() as s:
        rows = (
            await s.execute(
                select(Household.code, EvacuationTask)
                .join(EvacuationTask, EvacuationTask.household_id == Household.id)
                .where(EvacuationTask.warning_id == warning_id)
            )
        ).all()
        return {code: t for code, t in rows}


def token_for(settings, notice_id: int) -> str:
    return make_token(notice_id, key=link_key(settings.secret_key.get_secret_value()))


async def count(db, model, *where) -> int:
    async with db.session() as s:
        return (await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one()
