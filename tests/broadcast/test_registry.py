"""The terminal registry: CRUD inside the caller's scope, and the import that reports every bad row."""

from __future__ import annotations

import io

from openpyxl import Workbook
from sqlalchemy import func, select

from tests.broadcast.conftest import VILLAGE
from tests.factories import login
from warning_service.broadcast.models import Terminal

BODY = {"code": "HH-09", "name": "横湖村码头", "region_code": VILLAGE, "platform_id": "WL-T-0009"}


async def _count(db) -> int:
    async with db.session() as s:
        return (await s.execute(select(func.count()).select_from(Terminal))).scalar_one()


async def test_a_duty_officer_registers_lists_moves_and_retires_a_terminal(client, duty, db) -> None:
    r = await client.post("/api/v1/broadcast/terminals", headers=duty, json=BODY)
    assert r.status_code == 201, r.text
    t = r.json()
    assert (t["village_code"], t["town_code"], t["village_name"], t["town_name"], t["online"]) == (
        VILLAGE, "331081001", "横湖村", "太平街道", True)
    moved = await client.put(f"/api/v1/broadcast/terminals/{t['id']}", headers=duty,
                             json={**BODY, "region_code": "331081001002", "online": False})
    assert moved.status_code == 200 and moved.json()["village_name"] == "西门村" and not moved.json()["online"]
    page = (await client.get("/api/v1/broadcast/terminals", headers=duty)).json()
    assert (page["total"], page["online"], page["offline"]) == (1, 0, 1)
    assert (await client.delete(f"/api/v1/broadcast/terminals/{t['id']}", headers=duty)).status_code == 204
    assert (await client.get("/api/v1/broadcast/terminals", headers=duty)).json()["total"] == 0


async def test_a_terminal_must_stand_in_a_village_and_keep_its_codes_unique(client, duty) -> None:
    town = await client.post("/api/v1/broadcast/terminals", headers=duty, json={**BODY, "region_code": "331081001"})
    assert town.status_code == 422 and town.json()["detail"]["field"] == "region_code"
    assert "须登记到村" in town.json()["detail"]["message_zh"]
    assert (await client.post("/api/v1/broadcast/terminals", headers=duty, json=BODY)).status_code == 201
    again = await client.post("/api/v1/broadcast/terminals", headers=duty, json={**BODY, "code": "HH-10"})
    assert again.status_code == 409 and again.json()["detail"]["field"] == "platform_id"


async def test_scope_other_counties_terminals_do_not_exist_and_auditors_only_read(client, tree, duty, db) -> None:
    t = (await client.post("/api/v1/broadcast/terminals", headers=duty, json=BODY)).json()
    lh = await login(client, "lh_duty")
    assert (await client.get(f"/api/v1/broadcast/terminals/{t['id']}", headers=lh)).status_code == 404
    assert (await client.put(f"/api/v1/broadcast/terminals/{t['id']}", headers=lh, json=BODY)).status_code == 404
    assert (await client.delete(f"/api/v1/broadcast/terminals/{t['id']}", headers=lh)).status_code == 404
    assert (await client.get("/api/v1/broadcast/terminals", headers=lh)).json()["total"] == 0
    outside = await client.post("/api/v1/broadcast/terminals", headers=lh,
                                json={**BODY, "code": "X", "platform_id": "X"})
    assert outside.status_code == 422 and "管辖范围" in outside.json()["detail"]["message_zh"]
    audit = await login(client, "wl_audit")
    assert (await client.get(f"/api/v1/broadcast/terminals/{t['id']}", headers=audit)).status_code == 200
    assert (await client.post("/api/v1/broadcast/terminals", headers=audit, json=BODY)).status_code == 403
    assert (await client.delete(f"/api/v1/broadcast/terminals/{t['id']}", headers=audit)).status_code == 403
    files = {"file": ("t.csv", b"code,name,region_code,platform_id\nA,B,331081001001,P\n", "text/csv")}
    assert (await client.post("/api/v1/broadcast/terminals/import", headers=audit, files=files)).status_code == 403
    assert (await client.get("/api/v1/broadcast/terminals")).status_code == 401
    assert await _count(db) == 1


GOOD = ("终端编号,终端名称,区划代码,平台终端编号,在线状态,备注\n"
        "HH-01,横湖村村委会,331081001001,WL-T-0001,在线,\n"
        "XM-01,西门村广场,331081001002,WL-T-0101,离线,待维修\n")


async def test_import_takes_chinese_headers_and_is_idempotent(client, duty, db) -> None:
    files = {"file": ("终端.csv", GOOD.encode("gb18030"), "text/csv")}
    r = await client.post("/api/v1/broadcast/terminals/import", headers=duty, files=files)
    assert r.status_code == 200 and r.json() == {"rows": 2, "inserted": 2, "updated": 0}
    r = await client.post("/api/v1/broadcast/terminals/import", headers=duty, files=files)
    assert r.json() == {"rows": 2, "inserted": 0, "updated": 2}
    page = (await client.get("/api/v1/broadcast/terminals", headers=duty)).json()
    assert (page["online"], page["offline"]) == (1, 1)


async def test_import_reports_every_bad_row_at_once_and_writes_nothing(client, duty, db) -> None:
    await client.post("/api/v1/broadcast/terminals", headers=duty, json=BODY)
    bad = ("code,name,region_code,platform_id,online,note\n"
           "A-1,好的,331081001001,P-1,,\n"                 # line 2: fine
           "A-2,,331081001001,P-2,,\n"                    # 3: no name
           "A-3,城中村,331082001001,P-3,,\n"               # 4: another county
           "A-4,镇上,331081001,P-4,,\n"                    # 5: a town, not a village
           "A-1,重复,331081001001,P-5,,\n"                 # 6: code again
           "A-6,平台号重复,331081001001,P-1,,\n"            # 7: platform id again
           "A-7,别人的平台号,331081001001,WL-T-0009,,\n"     # 8: held by HH-09
           "A-8,状态,331081001001,P-8,坏了,\n"              # 9: bad online
           "A-9,无区划,999999,P-9,,\n")                     # 10: unknown region
    r = await client.post("/api/v1/broadcast/terminals/import", headers=duty,
                          files={"file": ("bad.csv", bad.encode(), "text/csv")})
    assert r.status_code == 422
    d = r.json()["detail"]
    assert [(e["line"], e["field"]) for e in d["errors"]] == [
        (3, "name"), (4, "region_code"), (5, "region_code"), (6, "code"), (7, "platform_id"), (8, "platform_id"),
        (9, "online"), (10, "region_code")]
    assert d["error_count"] == 8 and all(e["message_zh"] for e in d["errors"])
    assert await _count(db) == 1


async def test_import_reads_a_spreadsheet(client, duty, db) -> None:
    wb = Workbook()
    ws = wb.active
    ws.append(["code", "name", "region_code", "platform_id"])
    ws.append(["HH-01", "横湖村村委会", 331081001001, "WL-T-0001"])
    buf = io.BytesIO()
    wb.save(buf)
    r = await client.post("/api/v1/broadcast/terminals/import", headers=duty,
                          files={"file": ("t.xlsx", buf.getvalue(), "application/octet-stream")})
    assert r.status_code == 200, r.text
    assert r.json()["inserted"] == 1
