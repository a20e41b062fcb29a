"""Roster upload over HTTP: CSV or XLSX, every bad row at once, nothing written, scope enforced."""

from __future__ import annotations

import io

from openpyxl import Workbook
from sqlalchemy import func, select

from tests.factories import build_tree, login, make_user
from warning_service.person.models import Person

GOOD = "331081001001,王建国,village_responsible,13812345678,wang@example.cn\n"


async def people(db) -> int:
    async with db.session() as s:
        return (await s.execute(select(func.count()).select_from(Person))).scalar_one()


async def setup(db, clock, client):
    await build_tree(db, now=clock.now(), with_people=False)
    await make_user(db, username="wl_duty", role="duty_officer", region="331081", now=clock.now())
    return await login(client, "wl_duty")


async def test_upload_reports_every_bad_row_and_writes_nothing(db, clock, client):
    duty = await setup(db, clock, client)
    csv = ("region_code,name,role,phone,email\n" + GOOD
           + "331081001001,,village_responsible,13812345679,\n"        # line 3: no name
           + "331081001002,李海燕,village responsible,12345,\n"         # line 4: bad role and bad phone
           + "331082001,张志强,town_responsible,13812345680,\n")         # line 5: another county
    r = await client.post("/api/v1/people/import", headers=duty,
                          files={"file": ("名册.csv", csv.encode("gb18030"), "text/csv")})
    assert r.status_code == 422
    d = r.json()["detail"]
    assert d["error_count"] == 4
    assert [(e["line"], e["field"]) for e in d["errors"]] == [(3, "name"), (4, "role"), (4, "phone"),
                                                              (5, "region_code")]
    assert "不在您的管辖范围" in d["errors"][-1]["message_zh"]
    assert await people(db) == 0


async def test_upload_of_a_spreadsheet_imports_it(db, clock, client):
    duty = await setup(db, clock, client)
    book = Workbook()
    sheet = book.active
    sheet.append(["region_code", "name", "role", "phone", "email"])
    sheet.append([331081001001, "王建国", "village_responsible", 13812345678, None])
    sheet.append(["331081001", "张志强", "town_responsible", "+86 138 1234 5680", "zhang@example.cn"])
    buf = io.BytesIO()
    book.save(buf)
    r = await client.post("/api/v1/people/import", headers=duty,
                          files={"file": ("roster.xlsx", buf.getvalue(), "application/octet-stream")})
    assert r.status_code == 200, r.text
    assert r.json() == {"rows": 2, "inserted": 2, "updated": 0}
    assert await people(db) == 2
