"""通报 with 转移任务: a town's evacuation completion is a weighted part of its score, its counts are the
evacuation board's; a town with no tasks is scored on the other indicators, renormalised, never penalised."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select, update

from tests.evacuation.conftest import duty, issue, tasks_by_household, town, tree  # noqa: F401
from warning_service.assessment import service
from warning_service.early_warning.models import EarlyWarning
from warning_service.evacuation import report as evac_report
from warning_service.evacuation.models import EvacuationTask
from warning_service.notice.answer import acknowledge
from warning_service.notice.models import Notice
from warning_service.region import service as regions

TAIPING, CHENGDONG = "331081001", "331081002"
WEIGHTS = {"answer": 40, "on_time": 30, "proxy": 10, "feedback": 20, "evacuation": 20}


async def tongbao(db, weights):
    async with db.session() as s:
        county = await regions.get(s, code="331081")
        return await service.tongbao(s, region=county, per=service.period("month", date(2026, 7, 1)), weights=weights)


async def test_evacuation_completion_is_weighted_and_towns_without_tasks_are_renormalised(
        runtime, db, clock, town):  # noqa: F811
    torrent = await issue(runtime, targets=[TAIPING])  # 山洪红色: opens 太平's danger zones
    typhoon = await issue(runtime, targets=[CHENGDONG], hazard="typhoon")  # no zone in 城东 clears at typhoon
    tasks = await tasks_by_household(db, torrent)
    async with db.session() as s:
        await s.execute(update(EvacuationTask).where(EvacuationTask.id == tasks["H1"].id).values(status="moved"))
        await s.execute(update(EvacuationTask).where(EvacuationTask.id == tasks["H3"].id).values(
            status="with_relatives"))
        for wid in (torrent, typhoon):
            first = (await s.execute(select(Notice.id).where(Notice.warning_id == wid, Notice.reason == "primary")
                                     .order_by(Notice.id).limit(1))).scalar_one()
            await acknowledge(s, notice_id=first, path="sms_reply", now=clock.now())
    r = await tongbao(db, WEIGHTS)
    towns = {t["code"]: t for t in r["sections"]["actual"]["towns"]}
    taiping, chengdong = towns[TAIPING], towns[CHENGDONG]
    # The counts are the evacuation board's, town by town.
    async with db.session() as s:
        w = await s.get(EarlyWarning, torrent)
        board = await evac_report.board(s, warning=w, scope_path="/33/", now=clock.now())
    by_town = {g["key"]: g for g in board["by_town"]}
    assert (taiping["evac_households"], taiping["evac_moved"]) == (by_town[TAIPING]["households"],
                                                                    by_town[TAIPING]["moved"]) == (len(tasks), 2)
    assert r["sections"]["actual"]["evac_households"] == board["totals"]["households"]
    ind = taiping["indicators"]
    assert ind["evacuation"] == pytest.approx(2 / len(tasks), abs=1e-4)
    expected = sum(WEIGHTS[k] * ind[k] for k in WEIGHTS) / sum(WEIGHTS.values())
    assert taiping["score"] == pytest.approx(100 * expected, abs=0.01)
    # 城东 had nobody to move: scored on the other four, exactly as if evacuation had no weight.
    assert chengdong["evac_households"] == 0 and chengdong["indicators"]["evacuation"] is None
    without = {t["code"]: t for t in (await tongbao(db, {k: v for k, v in WEIGHTS.items() if k != "evacuation"}))[
        "sections"]["actual"]["towns"]}
    assert chengdong["score"] == without[CHENGDONG]["score"]
    assert taiping["score"] != without[TAIPING]["score"]
    # Only evacuation weighed: 太平 scores its completion rate, 城东 is not ranked on what it did not have.
    only = {t["code"]: t for t in (await tongbao(db, {"evacuation": 1}))["sections"]["actual"]["towns"]}
    assert only[TAIPING]["score"] == pytest.approx(100 * 2 / len(tasks), abs=0.01) and only[CHENGDONG]["score"] is None
