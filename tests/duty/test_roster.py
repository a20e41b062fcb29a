"""The duty roster: import all-or-nothing with every bad row reported, CRUD in scope, who is on duty now."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from openpyxl import Workbook
from sqlalchemy import func, select

from tests.factories import build_tree, login, make_user
from warning_service.duty import service
from warning_service.duty.models import DutyShift
from warning_service.errors import Invalid
from warning_service.person.models import Person

HEAD = ("region_code,starts_at,ends_at,leader_name,leader_phone,officer1_name,officer1_phone,officer2_name,"
        "officer2_phone,room_phone,note\n")
GOOD = HEAD + """331081,2026-07-01 08:00,2026-07-02 08:00,陈带班,13600000001,周值班,13600000002,吴值班,13600000003,\
0576-86123456,白班
331081,2026-07-02 08:00,2026-07-03 08:00,郑带班,13600000004,冯值班,13600000005,,,,
331081001,2026-07-01 08:00,2026-07-02 08:00,王镇长,13900000001,,,,,,
"""


async def shift_count(db) -> int:
    async with db.session() as s:
        return (await s.execute(select(func.count()).select_from(DutyShift))).scalar_one()


async def test_import_creates_shifts_and_links_known_people_by_phone(db, clock):
    tree = await build_tree(db, now=clock.now())
    async with db.session() as s:
        result = await service.import_file(s, filename="值班表.csv", raw=GOOD.encode("gb18030"), now=clock.now())
    assert (result.rows, result.inserted, result.replaced) == (3, 3, 0)
    async with db.session() as s:
        room = await service.on_duty(s, region_code="331081", at=datetime(2026, 7, 1, 1, 0, tzinfo=UTC))  # 09:00 北京
        [pub] = await service.public(s, [room])  # type: ignore[list-item]
        town = await service.on_duty(s, region_code="331081001", at=datetime(2026, 7, 1, 1, 0, tzinfo=UTC))
        [town_pub] = await service.public(s, [town])  # type: ignore[list-item]
        free = (await s.execute(select(Person.role, func.count()).where(Person.role.like("duty_%"))
                                .group_by(Person.role))).all()
    assert pub.leader.name == "陈带班" and [o.name for o in pub.officers] == ["周值班", "吴值班"]
    assert pub.starts_at == datetime(2026, 7, 1, 0, 0, tzinfo=UTC)  # 08:00 Beijing
    assert pub.room_phone == "0576-86123456"
    # the town head's phone is on the roster already: the seat is that person, not a copy
    assert town_pub.leader.person_id == tree.person("331081001", "town_responsible")
    assert dict(free) == {"duty_leader": 2, "duty_officer": 3}
    # importing the same file again replaces the seats, adds nothing
    async with db.session() as s:
        again = await service.import_file(s, filename="值班表.csv", raw=GOOD.encode(), now=clock.now())
    assert (again.inserted, again.replaced) == (0, 3) and await shift_count(db) == 3


async def test_import_reports_every_bad_row_and_saves_nothing(db, clock):
    await build_tree(db, now=clock.now())
    bad = HEAD + """331081,2026-07-01 08:00,2026-07-02 08:00,陈带班,13600000001,,,,,,
999999,2026-07-01 08:00,2026-07-02 08:00,甲,13600000011,,,,,,
331081,2026-07-01 20:00,2026-07-02 20:00,乙,13600000012,,,,,,
331081002,明天早上,2026-07-02 08:00,丙,13600000013,,,,,,
331081002,2026-07-03 08:00,2026-07-02 08:00,丁,12345,,,,,,
331081001,2026-07-01 08:00,2026-07-02 08:00,戊,,,,,,,
"""
    async with db.session() as s:
        try:
            await service.import_file(s, filename="roster.csv", raw=bad.encode(), now=clock.now())
        except Invalid as exc:
            err = exc
        else:
            raise AssertionError("a bad file was imported")
    got = sorted((e["line"], e["field"]) for e in err.extra["errors"])
    assert got == [(3, "region_code"), (4, "starts_at"), (5, "starts_at"), (6, "ends_at"), (6, "leader_phone"),
                   (7, "leader_phone")]
    assert "第 3 行" in err.message_zh and "未导入" in err.message_zh
    assert await shift_count(db) == 0


async def test_xlsx_import_reads_dates_as_beijing_time(db, clock):
    await build_tree(db, now=clock.now())
    wb = Workbook()
    ws = wb.active
    ws.append(HEAD.strip().split(","))
    ws.append(["331081", datetime(2026, 7, 1, 8, 0), datetime(2026, 7, 1, 20, 0), "陈带班", "13600000001",
               "周值班", 13600000002, None, None, None, None])
    buf = io.BytesIO()
    wb.save(buf)
    async with db.session() as s:
        r = await service.import_file(s, filename="值班表.xlsx", raw=buf.getvalue(), now=clock.now())
        [shift] = await service.list_shifts(s, scope_path="/")
    assert r.inserted == 1 and shift.starts_at == datetime(2026, 7, 1, 0, 0, tzinfo=UTC)


async def test_api_crud_scope_and_who_is_on_duty_now(client, db, clock):
    await build_tree(db, now=clock.now())  # clock: 2026-07-01 08:00 UTC = 16:00 Beijing
    await make_user(db, username="wl", role="duty_officer", region="331081", now=clock.now())
    await make_user(db, username="lh", role="duty_officer", region="331082", now=clock.now())
    h = await login(client, "wl")
    body = {"region_code": "331081", "starts_at": "2026-07-01T08:00:00+08:00", "ends_at": "2026-07-02T08:00:00+08:00",
            "leader": {"name": "陈带班", "phone": "13600000001"},
            "officers": [{"name": "周值班", "phone": "13600000002"}, {"name": "吴值班", "phone": "13600000003"}]}
    r = await client.post("/api/v1/duty/shifts", json=body, headers=h)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert r.json()["leader"]["seat_zh"] == "带班领导"
    clash = await client.post("/api/v1/duty/shifts", json={**body, "starts_at": "2026-07-01T20:00:00+08:00",
                                                            "ends_at": "2026-07-02T20:00:00+08:00"}, headers=h)
    assert clash.status_code == 409 and clash.json()["detail"]["existing_id"] == sid
    three = await client.post("/api/v1/duty/shifts", json={**body, "starts_at": "2026-07-03T08:00:00+08:00",
                                                             "ends_at": "2026-07-04T08:00:00+08:00",
                                                             "officers": body["officers"] * 2}, headers=h)
    assert three.status_code == 422
    # who is on duty for a village: the village has no room; the county's is the one escalation reaches
    now = await client.get("/api/v1/duty/now", params={"region": "331081001001"}, headers=h)
    assert now.status_code == 200
    assert now.json()["own"] is None and now.json()["nearest"]["id"] == sid
    later = await client.get("/api/v1/duty/now", params={"region": "331081", "at": "2026-07-02T09:00:00+08:00"},
                             headers=h)
    assert later.json()["own"] is None
    # another county's officer can neither see nor change it
    other = await login(client, "lh")
    assert (await client.get("/api/v1/duty/now", params={"region": "331081"}, headers=other)).status_code == 403
    assert (await client.delete(f"/api/v1/duty/shifts/{sid}", headers=other)).status_code == 403
    up = await client.post("/api/v1/duty/shifts/import", headers=other,
                           files={"file": ("r.csv", GOOD.encode(), "text/csv")})
    assert up.status_code == 422 and {e["field"] for e in up.json()["detail"]["errors"]} == {"region_code"}
    client.cookies.set("ws_token", h["Authorization"][7:])
    page = await client.get("/console/duty")
    assert page.status_code == 200 and "当班" in page.text and "陈带班" in page.text
    assert (await client.delete(f"/api/v1/duty/shifts/{sid}", headers=h)).status_code == 204
    assert await shift_count(db) == 0
