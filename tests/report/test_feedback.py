"""响应反馈, proxy answers and the update/lift reasons as report data: the JSON, the page, the CSV and the
workbook carry the same figures."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta, timezone

import openpyxl

from tests.factories import login
from tests.report.conftest import EVIL

FEEDBACK_TOTALS = {"answered": 7, "expected": 7, "given": 3, "missing": 4, "on_time": 2, "late": 1, "missed": 4,
                   "open": 0, "at_post": 2, "villages_affected": 4, "people_evacuated": 455}


async def test_json_report_counts_feedback_by_town_worst_first(client, feedback_case):
    h = await login(client, "wl_audit")
    r = await client.get(f"/api/v1/reports/warnings/{feedback_case.case.warning_id}", headers=h)
    assert r.status_code == 200, r.text
    f = r.json()["feedback"]
    assert f["deadline_seconds"] == 900 and f["level"] == "town"
    assert {k: f["totals"][k] for k in FEEDBACK_TOTALS} == FEEDBACK_TOTALS
    towns = [(t["name"], t["people_evacuated"], t["villages_affected"], t["given"], t["expected"])
             for t in f["by_region"]]
    assert towns == [("城东街道", 300, 1, 1, 1), ("太平街道", 155, 3, 2, 6)]


async def test_feedback_before_the_deadline_is_open_not_missed(client, clock, case):
    h = await login(client, "wl_audit")
    r = await client.get(f"/api/v1/reports/warnings/{case.warning_id}", headers=h)
    t = r.json()["feedback"]["totals"]
    assert (t["expected"], t["given"], t["missed"], t["open"]) == (7, 0, 0, 7)


async def test_proxy_answers_by_method_with_notes_and_the_reasons_in_the_header(client, feedback_case):
    h = await login(client, "wl_audit")
    body = (await client.get(f"/api/v1/reports/warnings/{feedback_case.case.warning_id}", headers=h)).json()
    p = body["proxy"]
    assert p["total"] == body["totals"]["proxy"] == 2
    assert sorted((m["method_zh"], m["count"]) for m in p["by_method"]) == [("上门确认", 1), ("电话确认", 1)]
    notes = {i["method"]: i["note"] for i in p["items"]}
    assert notes == {"visit": EVIL, "phone": feedback_case.phone_note}
    history = body["history"]
    assert [h["msg_type_zh"] for h in history] == ["发布", "更新", "解除"]
    assert history[1]["reason"] == feedback_case.update_reason and "级别 橙色→红色" in history[1]["changes"]
    assert history[2]["reason"] == feedback_case.lift_reason


async def test_csv_and_page_carry_the_same_feedback_sums_as_the_json(client, feedback_case):
    wid = feedback_case.case.warning_id
    h = await login(client, "wl_audit")
    r = await client.get(f"/api/v1/reports/warnings/{wid}.csv", headers=h, params={"rows": "feedback"})
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    total = rows[-1]
    assert total["区划名称"].startswith("合计")
    assert (int(total["已反馈"]), int(total["未反馈"]), int(total["超时未反馈"]), int(total["转移人数"]),
            int(total["受影响村数"])) == (3, 4, 4, 455, 4)
    assert [x["区划名称"] for x in rows[:-1]] == ["城东街道", "太平街道"]
    assert sum(int(x["转移人数"]) for x in rows[:-1]) == 455
    # The per-person CSV: the same sums from the feedback columns, the proxy method and note in words.
    detail = list(csv.DictReader(io.StringIO(
        (await client.get(f"/api/v1/reports/warnings/{wid}.csv", headers=h)).content.decode("utf-8-sig"))))
    assert sum(int(x["转移人数"] or 0) for x in detail) == 455
    assert sum(x["响应反馈"] == "已反馈" for x in detail) == 3 and sum(x["响应反馈"] == "未反馈" for x in detail) == 4
    by_code = {x["区划代码"]: x for x in detail}
    assert by_code["331081002001"]["代叫应方式"] == "上门确认"
    assert by_code["331081002001"]["代叫应说明"] == "'" + EVIL  # quoted: no formula in a spreadsheet
    assert by_code["331081001001"]["反馈期限"] == "超时反馈"
    # The page shows the same figures.
    client.cookies.set("ws_token", h["Authorization"].removeprefix("Bearer "))
    page = await client.get(f"/console/reports/warnings/{wid}")
    assert page.status_code == 200, page.text
    html = page.text
    for id_, value in [("fb-given", 3), ("fb-missing", 4), ("fb-evacuated", 455), ("fb-villages", 4)]:
        assert re.search(rf'id="{id_}">{value}<', html), id_
    assert feedback_case.lift_reason in html and feedback_case.phone_note in html


async def test_xlsx_is_typed_frozen_filtered_and_has_no_formula(client, feedback_case):
    wid = feedback_case.case.warning_id
    h = await login(client, "wl_audit")
    r = await client.get(f"/api/v1/reports/warnings/{wid}.xlsx", headers=h)
    assert r.status_code == 200, r.text
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["汇总", "发布与变更", "响应反馈", "代叫应", "分区统计", "叫应明细", "未叫应名单",
                             "渠道统计"]
    for ws in wb.worksheets:
        assert ws.freeze_panes == "A4", ws.title
        assert ws.auto_filter.ref and ws.auto_filter.ref.startswith("A3:"), ws.title
        assert ws.print_title_rows == "$3:$3" and ws.page_setup.orientation == "landscape"
        assert int(ws.page_setup.paperSize) == 9  # A4
        assert all(c.font.b for c in ws[3] if c.value is not None), ws.title
        assert "导出时间" in ws["A2"].value
        # No cell anywhere is a formula, whatever text users put in.
        assert not [c.coordinate for row in ws.iter_rows() for c in row if c.data_type == "f"], ws.title
    assert EVIL in wb["汇总"]["A1"].value  # the title names the warning, as text
    summary = {row[0].value: row[1] for row in wb["汇总"].iter_rows(min_row=4) if row[0].value}
    assert summary["预警标识"].value == EVIL and summary["预警标识"].data_type == "s"
    assert summary["应叫应"].value == 11 and summary["应叫应"].data_type == "n"
    assert summary["叫应率"].value == round(7 / 11, 4) and summary["叫应率"].number_format == "0.0%"
    assert summary["发布时间"].is_date
    assert summary["已反馈"].value == 3 and summary["转移人数"].value == 455
    assert summary["解除原因"].value == feedback_case.lift_reason
    assert summary["代叫应·上门确认"].value == 1

    def table(name: str) -> tuple[list[str], list[dict[str, object]]]:
        rows = list(wb[name].iter_rows(min_row=3))
        header = [c.value for c in rows[0]]
        return header, [dict(zip(header, row, strict=False)) for row in rows[1:]]

    header, notices = table("叫应明细")
    assert {"响应反馈", "反馈期限", "反馈时间", "到岗", "受影响村数", "转移人数", "代叫应方式",
            "代叫应说明"} <= set(header)
    town = next(r for r in notices if r["区划代码"].value == "331081001")
    assert town["区划代码"].data_type == "s" and town["区划代码"].number_format == "@"
    assert town["电话"].data_type == "s" and town["电话"].value.startswith("+86139")
    assert town["叫应时间"].is_date and town["叫应时间"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert town["转移人数"].value == 120 and town["转移人数"].data_type == "n"
    assert town["响应反馈"].value == "已反馈" and town["反馈期限"].value == "按时反馈"
    # Beijing time: the answer came 30 s after T0, shown as the wall clock in Beijing.
    t0_beijing = feedback_case.case.t0.astimezone(timezone(timedelta(hours=8))).replace(tzinfo=None)
    assert abs((town["叫应时间"].value - t0_beijing).total_seconds() - 30) < 1
    visit = next(r for r in notices if r["区划代码"].value == "331081002001")
    assert visit["代叫应说明"].value == EVIL and visit["代叫应说明"].data_type == "s"
    header, proxies = table("代叫应")
    assert sorted(r["代叫应方式"].value for r in proxies) == ["上门确认", "电话确认"]
    header, towns = table("响应反馈")
    assert [r["区划名称"].value for r in towns] == ["城东街道", "太平街道"]
    assert towns[0]["反馈率"].number_format == "0.0%" and towns[0]["转移人数"].value == 300
    widths = wb["叫应明细"].column_dimensions
    assert widths["C"].width >= 40 and widths["A"].width >= 10  # 区划路径 is wide, Chinese counts double
