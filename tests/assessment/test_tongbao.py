"""通报: towns ranked by the configured weights, 红榜/黑榜, exercises apart, sums equal to the per-warning reports."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
from openpyxl import load_workbook

from tests.conftest import make_settings
from tests.factories import login
from tests.report.conftest import add_notice, insert_warning
from warning_service.assessment import service
from warning_service.region import service as regions
from warning_service.report import scope
from warning_service.report.service import warning_report

WEIGHTS = {"answer": 40, "on_time": 30, "proxy": 10, "feedback": 20}


async def build(db, *, weights=WEIGHTS, on: date = date(2026, 7, 1), period: str = "month"):
    async with db.session() as s:
        county = await regions.get(s, code="331081")
        return await service.tongbao(s, region=county, per=service.period(period, on), weights=weights, list_size=1)


async def test_towns_are_ranked_by_the_weighted_score(db, feedback_case):
    r = await build(db)
    towns = r["sections"]["actual"]["towns"]
    assert [t["name"] for t in towns] == ["太平街道", "城东街道"]
    taiping, chengdong = towns
    # 太平: 6 of 7 answered, 4 on time, 1 by proxy, 2 of 6 gave feedback
    assert (taiping["required"], taiping["acknowledged"], taiping["on_time"], taiping["proxy"],
            taiping["feedback_given"]) == (7, 6, 4, 1, 2)
    assert taiping["score"] == pytest.approx(40 * 6 / 7 + 30 * 4 / 7 + 10 * 5 / 6 + 20 * 2 / 6, abs=0.02)
    # 城东: 1 of 4, on time but by proxy, with feedback
    assert (chengdong["required"], chengdong["acknowledged"], chengdong["proxy"], chengdong["feedback_given"]) == (
        4, 1, 1, 1)
    assert chengdong["score"] == pytest.approx(10 + 7.5 + 0 + 20, abs=0.02)
    assert [t["name"] for t in r["sections"]["actual"]["red"]] == ["太平街道"]
    assert [t["name"] for t in r["sections"]["actual"]["black"]] == ["城东街道"]
    # only feedback counts: the ranking turns over
    r2 = await build(db, weights={"answer": 0, "on_time": 0, "proxy": 0, "feedback": 1})
    assert [t["name"] for t in r2["sections"]["actual"]["towns"]] == ["城东街道", "太平街道"]


async def test_exercises_are_ranked_apart_and_periods_bound_the_warnings(db, clock, tree, feedback_case):
    t0 = feedback_case.case.t0
    ex = await insert_warning(db, t0=t0 + timedelta(hours=2), targets=["331081002"], status="exercise", n=2)
    await add_notice(db, warning_id=ex, person_id=tree.person("331081002", "town_responsible"), t0=t0,
                     state="acknowledged", ack=("link", 10))
    r = await build(db)
    assert r["sections"]["actual"]["totals"]["required"] == 11  # the exercise is not in the real figures
    exercise = r["sections"]["exercise"]
    assert exercise["warnings"] == 1 and [(t["name"], t["acknowledged"]) for t in exercise["towns"]] == [
        ("城东街道", 1)]
    assert (await build(db, on=date(2026, 8, 1)))["sections"]["actual"]["totals"]["required"] == 0
    assert (await build(db, on=date(2026, 7, 1), period="day"))["sections"]["actual"]["warnings"] == 1
    assert (await build(db, on=date(2026, 6, 30), period="day"))["sections"]["actual"]["warnings"] == 0


async def test_sums_agree_with_the_per_warning_reports(db, clock, tree, feedback_case):
    t0 = feedback_case.case.t0
    w2 = await insert_warning(db, t0=t0 + timedelta(days=3), targets=["331081001"], n=3)
    for region, role, kw in [("331081001", "town_responsible", {"state": "acknowledged", "ack": ("proxy", 50)}),
                             ("331081001001", "village_responsible", {"state": "timed_out"})]:
        await add_notice(db, warning_id=w2, person_id=tree.person(region, role), t0=t0 + timedelta(days=3), **kw)
    r = await build(db)
    towns = r["sections"]["actual"]["towns"]
    totals = {k: sum(t[k] for t in towns) for k in ("required", "acknowledged", "on_time", "proxy")}
    per_warning = dict.fromkeys(totals, 0)
    async with db.session() as s:
        county = await regions.get(s, code="331081")
        for wid in (feedback_case.case.warning_id, w2):
            rep = await warning_report(s, scoped=await scope.scoped_warning(s, warning_id=wid, region=county),
                                       now=clock.now())
            for k in per_warning:
                per_warning[k] += rep["totals"][k]
    assert totals == per_warning == {"required": 13, "acknowledged": 8, "on_time": 6, "proxy": 3}


def test_weights_are_validated_when_settings_load(db):
    with pytest.raises(ValueError, match="TONGBAO_WEIGHTS"):
        make_settings(db, tongbao_weights="answer=40,speed=60")
    with pytest.raises(ValueError, match="TONGBAO_WEIGHTS"):
        make_settings(db, tongbao_weights="answer=0")
    assert make_settings(db, tongbao_weights="answer=1").tongbao_weight_map() == {"answer": 1.0}


async def test_api_page_and_workbook(client, db, feedback_case):
    h = await login(client, "wl_audit")
    r = await client.get("/api/v1/assessment/tongbao", params={"period": "month", "on": "2026-07-01"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["sections"]["actual"]["red"][0]["name"] == "太平街道"
    assert (await client.get("/api/v1/assessment/tongbao", params={"period": "week"}, headers=h)).status_code == 422
    other = await login(client, "lh_audit")
    far = await client.get("/api/v1/assessment/tongbao", params={"region": "331081"}, headers=other)
    assert far.status_code == 403
    x = await client.get("/api/v1/assessment/tongbao.xlsx", params={"on": "2026-07-01"}, headers=h)
    assert x.status_code == 200
    ws = load_workbook(io.BytesIO(x.content))["实际"]
    assert "通报" in ws["A1"].value
    assert [ws.cell(row=4, column=c).value for c in (1, 3)] == [1, "太平街道"]
    client.cookies.set("ws_token", h["Authorization"][7:])
    page = await client.get("/console/tongbao", params={"on": "2026-07-01"})
    assert page.status_code == 200
    assert "红榜" in page.text and "黑榜" in page.text and "@page" in page.text and "太平街道" in page.text
    assert "http://" not in page.text.replace("http://testserver", "")  # no external assets
