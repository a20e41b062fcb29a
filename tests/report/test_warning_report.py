from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.report.conftest import add_notice, insert_warning
from warning_service.region.models import Region
from warning_service.report import scope as report_scope
from warning_service.report import service as reports


async def report_for(db, clock, warning_id: int, scope: str = "331081", **kw):
    async with db.session() as s:
        region = await s.get(Region, scope)
        scoped = await report_scope.scoped_warning(s, warning_id=warning_id, region=region)
        return await reports.warning_report(s, scoped=scoped, now=clock.now(), **kw)


async def test_rates_on_time_late_proxy_and_never_are_counted_right(db, clock, case):
    r = await report_for(db, clock, case.warning_id)
    t = r["totals"]
    assert (t["recipients"], t["required"], t["acknowledged"]) == (12, 11, 7)
    assert (t["on_time"], t["late"], t["proxy"], t["never"]) == (5, 2, 2, 4)
    assert (t["waiting"], t["timed_out"], t["closed"]) == (2, 2, 0)
    assert t["rate"] == round(7 / 11, 4) and t["on_time_rate"] == round(5 / 11, 4)
    # Reached: a carrier took a message (sent/delivered) or they answered; the queued and the failed/
    # undelivered-only people were not reached.
    assert t["reached"] == 10
    # Delivered: a receipt, or an answer.
    assert t["delivered"] == 10
    assert r["by_ack_path"] == {"link": 2, "sms_reply": 2, "voice_key": 1, "proxy": 2}


async def test_time_to_acknowledge_percentiles(db, clock, case):
    r = await report_for(db, clock, case.warning_id)
    assert r["time_to_ack"] == {"count": 7, "p50": 300.0, "p90": 1020.0, "max": 1200.0}
    tl = r["timeline"]
    assert tl["deadline_seconds"] == 600
    assert tl["points"][0] == {"t": 0, "acknowledged": 0, "late": 0}
    assert tl["points"][-1]["acknowledged"] == 7 and tl["points"][-1]["late"] == 2
    at_deadline = max((p for p in tl["points"] if p["t"] <= 600), key=lambda p: p["t"])
    assert at_deadline["acknowledged"] == 5 and at_deadline["late"] == 0
    cum = [p["acknowledged"] for p in tl["points"]]
    assert cum == sorted(cum)


async def test_escalations_fired_and_answered(db, clock, case):
    e = (await report_for(db, clock, case.warning_id))["escalations"]
    assert e["deputy"]["fired"] == 1 and e["deputy"]["answered"] == 1 and e["deputy"]["chains"] == 1
    assert e["escalation"]["fired"] == 1 and e["escalation"]["answered"] == 0
    assert (e["fired"], e["answered"], e["rate"]) == (2, 1, 0.5)


async def test_escalation_notices_are_not_counted_as_recipients(db, clock, case):
    r = await report_for(db, clock, case.warning_id)
    assert sum(x["recipients"] for x in r["by_role"]) == 12


async def test_channels_come_from_the_outbox(db, clock, case):
    by = {c["channel"]: c for c in (await report_for(db, clock, case.warning_id))["by_channel"]}
    sms = by["sms"]
    assert sms["messages"] == 13  # 12 primary + the deputy's
    assert sms["by_status"]["delivered"] == 9 and sms["by_status"]["failed"] == 1
    assert sms["by_status"]["undelivered"] == 1 and sms["by_status"]["queued"] == 1
    assert sms["by_kind"] == {"alert": 12, "deputy": 1}
    assert by["voice"]["messages"] == 4 and by["voice"]["by_kind"]["recall"] == 3
    assert by["broadcast"]["messages"] == 3 and by["broadcast"]["delivered_rate"] == 1.0


async def test_rollup_adds_up_at_every_level(db, clock, case):
    r = await report_for(db, clock, case.warning_id, rollup="grid")
    roll = r["rollup"]
    assert roll["levels"] == ["county", "town", "village", "grid"]
    nodes = {n["code"]: n for n in roll["nodes"]}
    keys = ["recipients", "required", "reached", "delivered", "acknowledged", "late", "proxy", "never"]
    for node in nodes.values():
        children = [n for n in nodes.values() if n["parent_code"] == node["code"]]
        for k in keys:
            below = sum(c["subtree"][k] for c in children)
            assert node["subtree"][k] == node["own"][k] + below, (node["code"], k)
    top = [n for n in nodes.values() if n["level"] == "county"]
    for k in keys:
        assert r["totals"][k] == roll["above"][k] + sum(n["subtree"][k] for n in top), k
    town = nodes["331081001"]["subtree"]
    assert town["required"] == 7 and town["acknowledged"] == 6
    assert nodes["331081002"]["subtree"]["rate"] == 0.25
    assert nodes["331081"]["own"]["recipients"] == 1 and nodes["331081"]["own"]["required"] == 0
    assert nodes["33108100200101"]["subtree"]["timed_out"] == 1


async def test_rollup_stops_at_the_level_asked(db, clock, case):
    r = await report_for(db, clock, case.warning_id, rollup="town")
    assert {n["level"] for n in r["rollup"]["nodes"]} == {"county", "town"}
    r = await report_for(db, clock, case.warning_id, rollup="none")
    assert r["rollup"]["nodes"] == [] and r["rollup"]["above"]["recipients"] == 12


async def test_by_level_of_the_person(db, clock, case):
    lv = {x["level"]: x for x in (await report_for(db, clock, case.warning_id))["by_level"]}
    assert [k for k in lv] == ["county", "town", "village", "grid"]
    assert (lv["grid"]["required"], lv["grid"]["acknowledged"]) == (6, 4)
    assert (lv["town"]["required"], lv["town"]["acknowledged"]) == (2, 1)


async def test_missing_list_names_person_role_path_attempts_and_last_status(db, clock, case):
    r = await report_for(db, clock, case.warning_id)
    m = r["missing"]
    assert m["total"] == 4
    by_region = {x["region_code"]: x for x in m["items"]}
    assert set(by_region) == {"331081001002", "331081002", "33108100200101", "33108100200102"}
    g = by_region["33108100200102"]
    assert g["region_path"] == "浙江省/台州市/温岭市/城东街道/东辉村/东辉村第2网格"
    assert g["role"] == "grid_responsible" and g["role_zh"] == "网格责任人"
    assert g["messages"] == 2 and g["last_channel"] == "voice" and g["last_status"] == "undelivered"
    assert g["state_zh"] == "已送达"
    silent = by_region["33108100200101"]
    assert silent["attempts"] == 3 and silent["escalations"] == 2 and silent["escalations_answered"] == 1
    assert by_region["331081002"]["last_status"] == "queued"
    # Listed down the tree, so a town's missing people are together.
    assert [x["region_code"] for x in m["items"]] == ["331081001002", "331081002", "33108100200101",
                                                      "33108100200102"]
    page = (await report_for(db, clock, case.warning_id, missing_offset=3, missing_limit=2))["missing"]
    assert page["total"] == 4 and len(page["items"]) == 1


async def test_an_answer_from_an_earlier_round_does_not_count(db, clock, tree):
    t0 = clock.now()
    wid = await insert_warning(db, t0=t0, targets=["331081001001"], n=7)
    # Answered in round 1; the warning was upgraded and the notice waits for a round-2 answer.
    person = tree.person("331081001001", "village_responsible")
    nid = await add_notice(db, warning_id=wid, person_id=person, t0=t0, state="acknowledged",
                           ack=("link", 30))
    async with db.session() as s:
        from warning_service.notice.models import Notice

        notice = await s.get(Notice, nid)
        notice.round, notice.state = 2, "pending"
    t = (await report_for(db, clock, wid))["totals"]
    assert (t["required"], t["acknowledged"], t["never"], t["waiting"]) == (1, 0, 1, 1)


async def test_a_town_auditor_sees_only_the_town(db, clock, case):
    r = await report_for(db, clock, case.warning_id, scope="331081002")
    t = r["totals"]
    assert (t["recipients"], t["required"], t["acknowledged"], t["never"]) == (4, 4, 1, 3)
    assert {x["region_code"][:9] for x in r["missing"]["items"]} == {"331081002"}
    by = {c["channel"]: c for c in r["by_channel"]}
    assert by["broadcast"]["messages"] == 1 and by["sms"]["messages"] == 5
    assert r["escalations"]["fired"] == 2


async def test_a_city_warning_seen_from_one_county(db, clock, tree):
    t0 = clock.now()
    wid = await insert_warning(db, t0=t0, targets=["3310"], n=3)
    for region, role in (("331081001", "town_responsible"), ("331082001", "town_responsible")):
        await add_notice(db, warning_id=wid, person_id=tree.person(region, role), t0=t0, state="pending")
    r = await report_for(db, clock, wid, scope="331081")
    assert r["totals"]["recipients"] == 1
    assert (await report_for(db, clock, wid, scope="3310"))["totals"]["recipients"] == 2


async def test_missing_last_at_is_an_aware_time(db, clock, case):
    m = (await report_for(db, clock, case.warning_id))["missing"]["items"]
    assert all(x["last_at"].tzinfo is not None for x in m)


async def test_a_town_auditor_sees_the_county_node_holding_only_the_town(db, clock, case):
    r = await report_for(db, clock, case.warning_id, scope="331081002", rollup="village")
    nodes = {n["code"]: n for n in r["rollup"]["nodes"]}
    assert set(nodes) == {"331081", "331081002", "331081002001"}
    assert nodes["331081"]["subtree"]["required"] == 4 and nodes["331081"]["own"]["required"] == 0


async def test_a_report_reads_one_snapshot_and_writes_nothing(db, clock, case):
    if db.is_sqlite:
        pytest.skip("snapshots are PostgreSQL's REPEATABLE READ")
    async with db.session() as s:
        region = await s.get(Region, "331081")
        scoped = await report_scope.scoped_warning(s, warning_id=case.warning_id, region=region)
    async with report_scope.snapshot(db) as s:
        before = (await reports.warning_report(s, scoped=scoped, now=clock.now()))["totals"]["acknowledged"]
        async with db.session() as other:  # an answer arrives while the report is being read
            await other.execute(text("UPDATE notice SET state = 'acknowledged' WHERE id = :i"),
                                {"i": case.notices["331081002"]})
            await other.execute(text(
                "INSERT INTO acknowledgment (notice_id, round, warning_id, person_id, path, acknowledged_at, late)"
                " SELECT id, round, warning_id, person_id, 'link', created_at, false FROM notice WHERE id = :i"),
                {"i": case.notices["331081002"]})
        again = (await reports.warning_report(s, scoped=scoped, now=clock.now()))["totals"]["acknowledged"]
        assert before == again == 7
        with pytest.raises(DBAPIError, match="read-only"):
            await s.execute(text("UPDATE notice SET state = 'closed'"))
    async with report_scope.snapshot(db) as s:
        assert (await reports.warning_report(s, scoped=scoped, now=clock.now()))["totals"]["acknowledged"] == 8


async def test_a_big_area_read_in_slices_counts_the_same_as_one_statement(db, clock, case, monkeypatch):
    whole = await report_for(db, clock, case.warning_id, rollup="grid")
    town = await report_for(db, clock, case.warning_id, scope="331081001", rollup="grid")
    monkeypatch.setattr(reports.q, "SLICE_ROWS", 2)  # the 12 people's notices (and regions) in slices of ~2
    async with db.session() as s:
        slices = await reports.q.notice_slices(s, warning_id=case.warning_id)
    if db.is_sqlite:
        assert slices == [None]  # one statement: SQLite has no snapshot to keep slices consistent
    else:
        assert len(slices) >= 6
        assert all(a[1] == b[0] for a, b in zip(slices, slices[1:], strict=False))  # contiguous
    assert await report_for(db, clock, case.warning_id, rollup="grid") == whole
    assert await report_for(db, clock, case.warning_id, scope="331081001", rollup="grid") == town
