from __future__ import annotations

import csv
import io
from datetime import timedelta

import openpyxl
from sqlalchemy import func, select

from tests.factories import login
from tests.report.conftest import add_notice, insert_warning
from warning_service.early_warning.models import EarlyWarning


async def test_auditor_gets_the_json_report(client, case):
    h = await login(client, "wl_audit")
    r = await client.get(f"/api/v1/reports/warnings/{case.warning_id}", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["totals"]["rate"] == round(7 / 11, 4) and body["missing"]["total"] == 4
    assert body["warning"]["hazard_zh"] == "台风" and body["warning"]["level_zh"] == "红色"
    town = await client.get(f"/api/v1/reports/warnings/{case.warning_id}", headers=h,
                            params={"region": "331081002", "rollup": "grid"})
    assert town.json()["totals"]["required"] == 4


async def test_report_access_is_scoped_and_checked(client, case):
    url = f"/api/v1/reports/warnings/{case.warning_id}"
    other = await login(client, "lh_audit")
    r = await client.get(url, headers=other)
    assert r.status_code == 403 and r.json()["detail"]["field"] == "warning_id"
    duty = await login(client, "wl_duty")
    assert (await client.get(url, headers=duty)).status_code == 403
    h = await login(client, "town_audit")
    r = await client.get(url, headers=h, params={"region": "331081001"})
    assert r.status_code == 403 and r.json()["detail"]["field"] == "region"
    assert (await client.get(url, headers=h)).json()["totals"]["required"] == 4
    assert (await client.get(url)).status_code == 401
    for ext in ("", ".csv", ".xlsx"):
        assert (await client.get(url + ext, headers=other)).status_code == 403, ext


async def test_bad_report_parameters_are_422_with_field_and_both_languages(client, case):
    h = await login(client, "wl_audit")
    url = f"/api/v1/reports/warnings/{case.warning_id}"
    for params, field in (({"region": "999999"}, "region"), ({"rollup": "street"}, "rollup"),
                          ({"missing_limit": -1}, "missing_limit")):
        r = await client.get(url, headers=h, params=params)
        assert r.status_code == 422, params
        d = r.json()["detail"]
        assert d["field"] == field and d["message"] and d["message_zh"], d
    r = await client.get(url + ".csv", headers=h, params={"rows": "people"})
    assert r.status_code == 422 and r.json()["detail"]["field"] == "rows"
    r = await client.get("/api/v1/reports/warnings/99999", headers=h)
    assert r.status_code == 404 and r.json()["detail"]["field"] == "warning_id"
    r = await client.get("/api/v1/reports/warnings/abc", headers=h)
    assert r.status_code == 422 and r.json()["detail"]["field"] == "warning_id"


def read_csv(content: bytes) -> list[dict[str, str]]:
    assert content.startswith("\ufeff".encode())
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


async def test_csv_has_one_row_per_notice_with_chinese_headers(client, case):
    h = await login(client, "wl_audit")
    r = await client.get(f"/api/v1/reports/warnings/{case.warning_id}.csv", headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "filename*=UTF-8''" in r.headers["content-disposition"]
    rows = read_csv(r.content)
    assert len(rows) == 12
    by_region = {x["区划代码"]: x for x in rows}
    late_proxy = by_region["33108100100202"]
    assert (late_proxy["已叫应"], late_proxy["超时叫应"], late_proxy["叫应方式"]) == ("是", "是", "代为叫应")
    assert late_proxy["叫应用时(秒)"] == "1200.0" and late_proxy["代叫应方式"] == "电话确认"
    # 08:00 UTC + 1200 s is 16:20 in Beijing.
    assert late_proxy["叫应时间"] == "2026-07-01 16:20:00"
    assert by_region["331081"]["需叫应"] == "否"
    never = by_region["33108100200102"]
    assert never["已叫应"] == "否" and never["最后投递状态"] == "未送达" and never["最后渠道"] == "语音电话"
    assert sum(1 for x in rows if x["需叫应"] == "是" and x["已叫应"] == "是") == 7


async def test_csv_of_regions_and_of_the_missing(client, case):
    h = await login(client, "wl_audit")
    url = f"/api/v1/reports/warnings/{case.warning_id}.csv"
    regions = read_csv((await client.get(url, headers=h, params={"rows": "regions"})).content)
    assert [x["层级"] for x in regions].count("网格") == 6 and len(regions) == 12
    county = next(x for x in regions if x["区划代码"] == "331081")
    figures = (county["应叫应"], county["已叫应"], county["未叫应"], county["叫应率"])
    assert figures == ("11", "7", "4", "63.6%")
    towns = [x for x in regions if x["层级"] == "乡镇(街道)"]
    assert sum(int(x["应叫应"]) for x in towns) + int(county["本级人员应叫应"]) == 11
    missing = read_csv((await client.get(url, headers=h, params={"rows": "missing"})).content)
    assert sorted(x["区划代码"] for x in missing) == ["331081001002", "331081002", "33108100200101",
                                                  "33108100200102"]


async def test_xlsx_opens_with_the_right_sheets_and_rows(client, case):
    h = await login(client, "wl_audit")
    r = await client.get(f"/api/v1/reports/warnings/{case.warning_id}.xlsx", headers=h)
    assert r.status_code == 200, r.text
    wb = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)
    assert wb.sheetnames == ["汇总", "发布与变更", "响应反馈", "代叫应", "分区统计", "叫应明细", "未叫应名单",
                             "渠道统计"]
    # Row 1 title, row 2 scope and export time, row 3 the header.
    summary = {row[0]: (row + (None,))[1] for row in wb["汇总"].iter_rows(min_row=4, values_only=True)}
    assert summary["应叫应"] == 11 and summary["已叫应"] == 7 and summary["叫应率"] == round(7 / 11, 4)
    assert summary["叫应用时中位数(秒)"] == 300.0
    notices = list(wb["叫应明细"].iter_rows(min_row=3, values_only=True))
    assert notices[0][:4] == ("通知编号", "区划代码", "区划路径", "姓名") and len(notices) == 13
    missing = list(wb["未叫应名单"].iter_rows(min_row=3, values_only=True))
    assert len(missing) == 5 and all(row[8] == "否" for row in missing[1:])
    regions = list(wb["分区统计"].iter_rows(min_row=3, values_only=True))
    assert len(regions) == 13
    channels = {row[0]: row for row in wb["渠道统计"].iter_rows(min_row=4, values_only=True)}
    assert set(channels) == {"短信", "语音电话", "应急广播"}


async def test_summary_ranks_towns_worst_first_and_counts_exercises_apart(client, db, clock, case, tree):
    t0 = case.t0
    exercise = await insert_warning(db, t0=t0 + timedelta(hours=2), targets=["331081001"], hazard="rainstorm",
                                    level="orange", status="exercise", n=2)
    await add_notice(db, warning_id=exercise, person_id=tree.person("331081001", "town_responsible"),
                     t0=t0 + timedelta(hours=2), state="timed_out")
    old = await insert_warning(db, t0=t0 - timedelta(days=60), targets=["331081"], n=3)
    await add_notice(db, warning_id=old, person_id=tree.person("331081", "county_responsible"),
                     t0=t0 - timedelta(days=60), state="timed_out")
    h = await login(client, "wl_audit")
    r = await client.get("/api/v1/reports/summary", headers=h,
                         params={"from": "2026-06-01", "to": "2026-07-01"})
    assert r.status_code == 200, r.text
    s = r.json()["statuses"]
    actual, drill = s["actual"], s["exercise"]
    assert actual["warnings"] == 1
    assert (actual["totals"]["required"], actual["totals"]["acknowledged"]) == (11, 7)
    assert [x["code"] for x in actual["by_region"]] == ["331081002", "331081001"]
    assert actual["by_region"][0]["rate"] == 0.25 and actual["by_region"][0]["rank"] == 1
    assert {x["hazard"]: x["required"] for x in actual["by_hazard"]} == {"typhoon": 11}
    assert {x["role"]: x["acknowledged"] for x in actual["by_role"]}["grid_responsible"] == 4
    assert drill["warnings"] == 1
    assert (drill["totals"]["required"], drill["totals"]["acknowledged"]) == (1, 0)
    assert drill["by_level"][0]["level_zh"] == "橙色"
    assert s["test"]["warnings"] == 0 and s["test"]["totals"]["required"] == 0
    wider = (await client.get("/api/v1/reports/summary", headers=h, params={"from": "2026-04-01"})).json()
    assert wider["statuses"]["actual"]["warnings"] == 2


async def test_summary_parameters_are_checked(client, case):
    h = await login(client, "wl_audit")
    url = "/api/v1/reports/summary"
    for params, field in (({"from": "last week"}, "from"), ({"to": "2026-13-01"}, "to"),
                          ({"from": "2026-07-02", "to": "2026-07-01"}, "from"),
                          ({"from": "2024-01-01", "to": "2026-07-01"}, "from"),
                          ({"region": "331082"}, "region"), ({"rank_level": "grid"}, "rank_level")):
        r = await client.get(url, headers=h, params=params)
        assert r.status_code in (403, 422), params
        d = r.json()["detail"]
        assert d["field"] == field and d["message_zh"], (params, d)
    assert (await client.get(url, headers=h, params={"region": "331082"})).status_code == 403
    village = await client.get(url, headers=h, params={"region": "331081001001", "rank_level": "town"})
    assert village.status_code == 422 and village.json()["detail"]["field"] == "rank_level"


async def test_an_auditor_cannot_issue_warnings(client, db, case):
    body = {"hazard": "typhoon", "level": "red", "description": "台风即将登陆", "targets": ["331081001"]}
    h = await login(client, "wl_audit")
    r = await client.post("/api/v1/warnings", headers=h, json=body)
    assert r.status_code == 403, r.text
    assert r.json()["detail"]["message_zh"]
    async with db.session() as s:
        assert (await s.execute(select(func.count()).select_from(EarlyWarning))).scalar_one() == 1
    # The same request from a duty officer is accepted: the auditor was refused for the role alone.
    duty = await login(client, "wl_duty")
    assert (await client.post("/api/v1/warnings", headers=duty, json=body)).status_code == 201
