"""复盘: one ordered timeline of a warning, with every ledger decision about it and the report's own numbers."""

from __future__ import annotations

import io
from datetime import timedelta

from openpyxl import load_workbook

from tests.factories import login
from warning_service.early_warning.policy import load_policy
from warning_service.ledger import service as ledger
from warning_service.region import service as regions
from warning_service.report import scope
from warning_service.response import service as responses
from warning_service.response.models import ResponseAdjust, ResponseLevel, ResponseStart
from warning_service.review import service


async def decide(db, t0, wid):
    """Decisions about the warning in the ledger, out of order of insertion time on purpose."""
    async with db.session() as s:
        for minutes, action in [(0, "warning.issued"), (10, "escalation.recalls"), (12, "warning.updated"),
                                (60, "warning.lifted")]:
            await ledger.append(s, at=t0 + timedelta(minutes=minutes), actor="user:wl_duty", action=action,
                                subject_type="warning", subject_id=wid, details={"count": 3} if minutes == 10 else {})
        # someone else's warning: not in this timeline
        await ledger.append(s, at=t0, actor="user:x", action="warning.issued", subject_type="warning",
                            subject_id=wid + 100, details={})
    async with db.session() as s:
        r, _ = await responses.start(s, data=ResponseStart(region_code="331081", hazard="typhoon",
                                                           level=ResponseLevel.IV, warning_id=wid,
                                                           decided_by="县防指指挥长"),
                                     actor="user:wl_duty", policy=load_policy(None), now=t0 + timedelta(minutes=5))
        await responses.adjust(s, response_id=r.id, data=ResponseAdjust(level=ResponseLevel.II, decided_by="县长",
                                                                          reason="风雨加剧"),
                               actor="user:wl_duty", policy=load_policy(None), now=t0 + timedelta(minutes=15))


async def test_timeline_lists_every_ledger_decision_in_order_with_the_reports_numbers(db, clock, feedback_case):
    c = feedback_case.case
    await decide(db, c.t0, c.warning_id)
    async with db.session() as s:
        county = await regions.get(s, code="331081")
        scoped = await scope.scoped_warning(s, warning_id=c.warning_id, region=county)
        data = await service.review(s, scoped=scoped, now=clock.now())
    events = data["events"]
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    decisions = [e["ref"].split("#")[0] for e in events if e["kind"] == "ledger"]
    assert decisions == ["warning.issued", "response.started", "escalation.recalls", "warning.updated",
                         "response.raised", "warning.lifted"]
    changes = [e["text"] for e in events if e["kind"] == "response"]
    assert changes[0].startswith("启动 Ⅳ级") and "Ⅳ级→Ⅱ级" in changes[1] and "县长" in changes[1]
    assert [e["kind"] for e in events[:1]] == ["revision"]
    t = data["report"]["totals"]
    # the per-minute counts add up to the report's figures
    assert data["counts"]["answers"] == t["acknowledged"] == 7
    assert data["counts"]["proxy"] == t["proxy"] == 2
    assert data["counts"]["feedback"] == 3 and data["counts"]["chain_answers"] == 1
    late = sum(int(e["text"].split("其中超时 ")[1].split(" ")[0]) for e in events if e["kind"] == "answers")
    assert late == t["late"]
    failed = [e for e in events if e["kind"] == "messages" and "失败/未送达 0 条" not in e["text"]]
    assert failed  # the undelivered and failed messages show


async def test_api_page_and_workbook_in_scope(client, db, clock, feedback_case):
    c = feedback_case.case
    await decide(db, c.t0, c.warning_id)
    h = await login(client, "wl_audit")
    r = await client.get(f"/api/v1/reviews/warnings/{c.warning_id}", headers=h)
    assert r.status_code == 200, r.text
    n = len(r.json()["events"])
    x = await client.get(f"/api/v1/reviews/warnings/{c.warning_id}.xlsx", headers=h)
    assert x.status_code == 200
    ws = load_workbook(io.BytesIO(x.content))["复盘时间线"]
    assert "复盘" in ws["A1"].value and ws.max_row == 3 + n
    other = await login(client, "lh_audit")
    assert (await client.get(f"/api/v1/reviews/warnings/{c.warning_id}", headers=other)).status_code in (403, 404)
    client.cookies.set("ws_token", h["Authorization"][7:])
    page = await client.get(f"/console/reviews/warnings/{c.warning_id}")
    assert page.status_code == 200 and "时间线" in page.text and "启动应急响应" in page.text and "@page" in page.text
