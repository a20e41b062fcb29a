"""演练: issued once when due (however many workers claim), never before, never after a cancel; an unannounced
drill's texts say 演练 and it is hidden below its scheduler until issued; results apart from real warnings."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from tests.drills.conftest import COUNTY_DUTY, HOUR, TOWN, count, schedule, warnings_of_status
from tests.factories import login
from warning_service.delivery.models import OutboxMessage
from warning_service.dialect import is_postgresql
from warning_service.drills import service
from warning_service.drills.jobs import drill_tick
from warning_service.drills.models import Drill
from warning_service.early_warning.messages import render_outbox
from warning_service.errors import Conflict
from warning_service.ledger import service as ledger
from warning_service.ledger.models import LedgerPending
from warning_service.notice.answer import acknowledge
from warning_service.notice.models import Notice
from warning_service.region import service as regions
from warning_service.report import scope
from warning_service.report.service import warning_report


async def test_a_due_drill_is_not_issued_before_its_time_and_once_however_many_workers_claim(runtime, db, clock, tree):
    drill_id = await schedule(runtime)
    assert await drill_tick(runtime) == 0
    clock.advance(HOUR - HOUR / 60)
    assert await drill_tick(runtime) == 0 and await warnings_of_status(db, "exercise") == []
    clock.advance(HOUR / 60)
    async with db.session() as probe:
        pg = is_postgresql(probe)
    if pg:
        # Worker A holds the claim, uncommitted; worker B skips the locked row at once instead of waiting.
        async with db.session() as a:
            assert await service.issue_due(a, policy=runtime.policy, settings=runtime.settings, now=clock.now()) == [
                drill_id]
            async with db.session() as b:
                taken = await asyncio.wait_for(service.issue_due(
                    b, policy=runtime.policy, settings=runtime.settings, now=clock.now()), timeout=5)
            assert taken == []
        assert await drill_tick(runtime) == 0  # committed: no longer due
    else:
        done = await asyncio.gather(drill_tick(runtime), drill_tick(runtime))
        assert sorted(done) == [0, 1]
    issued = await warnings_of_status(db, "exercise")
    assert len(issued) == 1 and issued[0].targets == [TOWN] and issued[0].source == "drill"
    async with db.session() as s:
        drill = await s.get(Drill, drill_id)
        assert (drill.state, drill.warning_id, drill.issued_at) == ("issued", issued[0].id, clock.now())
    clock.advance(HOUR)
    assert await drill_tick(runtime) == 0 and len(await warnings_of_status(db, "exercise")) == 1
    assert await count(db, LedgerPending, LedgerPending.action == "drill.issued") == 1


async def test_a_cancelled_drill_is_never_issued_and_an_issued_one_cannot_be_cancelled(runtime, db, clock, tree):
    cancelled, kept = await schedule(runtime), await schedule(runtime, due_at=clock.now() + 2 * HOUR)
    async with db.session() as s:
        await service.cancel(s, drill_id=cancelled, actor=COUNTY_DUTY, now=clock.now())
    clock.advance(3 * HOUR)
    assert await drill_tick(runtime) == 1
    async with db.session() as s:
        assert (await s.get(Drill, cancelled)).state == "cancelled"
        assert (await s.get(Drill, kept)).state == "issued"
    assert len(await warnings_of_status(db, "exercise")) == 1
    for drill_id in (cancelled, kept):
        with pytest.raises(Conflict):
            async with db.session() as s:
                await service.cancel(s, drill_id=drill_id, actor=COUNTY_DUTY, now=clock.now())


async def test_an_unannounced_drill_is_hidden_below_its_scheduler_and_its_texts_say_drill(
        client, runtime, db, clock, tree, settings):
    county, town = await login(client, "wl_duty"), await login(client, "tp_duty")
    due = (clock.now() + HOUR).isoformat()
    r = await client.post("/api/v1/drills", headers=county, json={
        "region_code": TOWN, "hazard": "mountain_torrent", "level": "red", "announced": False, "due_at": due})
    assert r.status_code == 201, r.text
    drill_id = r.json()["id"]
    # The town's own duty officer is among those it tests: the console does not tell them.
    assert [d["id"] for d in (await client.get("/api/v1/drills", headers=town)).json()] == []
    assert (await client.get(f"/api/v1/drills/{drill_id}", headers=town)).status_code == 404
    assert (await client.post(f"/api/v1/drills/{drill_id}/cancel", headers=town)).status_code == 404
    assert [d["id"] for d in (await client.get("/api/v1/drills", headers=county)).json()] == [drill_id]
    clock.advance(HOUR)
    assert await drill_tick(runtime) == 1
    assert [d["id"] for d in (await client.get("/api/v1/drills", headers=town)).json()] == [drill_id]
    assert await warnings_of_status(db, "test") == []  # no 演练预告: nobody was told
    (warning,) = await warnings_of_status(db, "exercise")
    async with db.session() as s:
        rows = list((await s.execute(select(OutboxMessage).where(OutboxMessage.warning_id == warning.id))).scalars())
        texts = await render_outbox(s, rows=rows, settings=settings, now=clock.now())
    assert rows and {r.channel for r in rows} <= {"sms", "email"}  # no loudspeaker plays a drill to residents
    sms = [m.body for m in texts.values() if m.channel == "sms"]
    assert sms and all(b.startswith("【演练】【") for b in sms)
    assert all("突击叫应演练" in b and "不是真实预警" in b and "确认" in b for b in sms), sms[0]


async def test_drill_results_are_scored_like_a_warning_and_kept_apart_in_the_tongbao(
        client, runtime, db, clock, tree):
    drill_id = await schedule(runtime, level="red")
    clock.advance(HOUR)
    await drill_tick(runtime)
    (warning,) = await warnings_of_status(db, "exercise")
    async with db.session() as s:
        first = (await s.execute(select(Notice.id).where(Notice.warning_id == warning.id, Notice.reason == "primary")
                                 .order_by(Notice.id).limit(2))).scalars().all()
        await acknowledge(s, notice_id=first[0], path="sms_reply", now=clock.now() + HOUR / 60)
        await acknowledge(s, notice_id=first[1], path="link", now=clock.now() + HOUR / 2)  # late
    audit = await login(client, "wl_audit")
    listed = (await client.get("/api/v1/drills", headers=audit)).json()
    result = listed[0]["result"]
    async with db.session() as s:
        county = await regions.get(s, code="331081")
        rep = await warning_report(s, scoped=await scope.scoped_warning(s, warning_id=warning.id, region=county),
                                   now=clock.now())
    assert (result["required"], result["acknowledged"], result["on_time"]) == (
        rep["totals"]["required"], rep["totals"]["acknowledged"], rep["totals"]["on_time"]) 
    assert result["acknowledged"] == 2 and result["on_time"] == 1
    r = await client.get("/api/v1/assessment/tongbao", headers=audit, params={"period": "day", "on": "2026-07-01"})
    sections = r.json()["sections"]
    assert sections["actual"]["warnings"] == 0 and sections["actual"]["totals"]["required"] == 0
    assert sections["exercise"]["warnings"] == 1
    assert sections["exercise"]["totals"]["required"] == result["required"]
    assert sections["exercise"]["totals"]["acknowledged"] == 2
    client.cookies.set("ws_token", audit["Authorization"][7:])
    page = await client.get("/console/tongbao", params={"period": "day", "on": "2026-07-01"})
    assert 'id="exercise"' in page.text and "演练预警:1 次" in page.text
    assert drill_id == listed[0]["id"]


async def test_bad_input_is_refused_with_field_and_reason_and_changes_nothing(client, db, clock, tree):
    county, far = await login(client, "wl_duty"), await login(client, "lh_duty")
    past = await client.post("/api/v1/drills", headers=county, json={"region_code": TOWN,
                                                                     "due_at": clock.now().isoformat()})
    assert past.status_code == 422 and past.json()["detail"]["field"] == "due_at"
    assert "执行时间" in past.json()["detail"]["message_zh"]
    naive = await client.post("/api/v1/drills", headers=county, json={"region_code": TOWN,
                                                                      "due_at": "2026-07-01T20:00:00"})
    assert naive.status_code == 422
    outside = await client.post("/api/v1/drills", headers=far, json={
        "region_code": TOWN, "due_at": (clock.now() + HOUR).isoformat()})
    assert outside.status_code == 403 and outside.json()["detail"]["field"] == "region_code"
    audit = await login(client, "wl_audit")
    assert (await client.post("/api/v1/drills", headers=audit, json={
        "region_code": TOWN, "due_at": (clock.now() + HOUR).isoformat()})).status_code == 403
    assert await count(db, Drill) == 0
    ok = await client.post("/api/v1/drills", headers=county, json={
        "region_code": TOWN, "due_at": (clock.now() + HOUR).isoformat()})
    moved = await client.put(f"/api/v1/drills/{ok.json()['id']}", headers=county,
                             json={"due_at": (clock.now() + 2 * HOUR).isoformat(), "level": "orange"})
    assert moved.status_code == 200 and moved.json()["level"] == "orange"
    assert (await client.get(f"/api/v1/drills/{ok.json()['id']}", headers=far)).status_code == 404
    # The town sees the county's announced drill of its people, but may not call it off or change it.
    town = await login(client, "tp_duty")
    assert (await client.get(f"/api/v1/drills/{ok.json()['id']}", headers=town)).status_code == 200
    refused = await client.post(f"/api/v1/drills/{ok.json()['id']}/cancel", headers=town)
    assert refused.status_code == 403 and "上级" in refused.json()["detail"]["message_zh"]
    # Turning it into a 突击 drill turns the standard text with it.
    surprise = await client.put(f"/api/v1/drills/{ok.json()['id']}", headers=county, json={"announced": False})
    assert "突击" in surprise.json()["description"]


async def test_the_audit_log_shows_a_drill_only_from_its_schedulers_scope_up(runtime, db, clock, tree, settings):
    drill_id = await schedule(runtime, announced=False)
    async with db.session() as s:
        await ledger.seal(s, key=ledger.ledger_key(settings.secret_key.get_secret_value()))

    async def seen(scope_path: str) -> list[str]:
        async with db.session() as s:
            rows, _ = await ledger.list_entries(s, filters=ledger.LedgerFilter(action="drill.scheduled"),
                                                scope_path=scope_path, limit=10)
            return [r.subject_id for r in rows]

    assert await seen("/33/3310/331081/") == [str(drill_id)]
    assert await seen("/33/3310/331081/331081001/") == []  # the town it will test
    assert await seen("/33/3310/331082/") == []  # another county


async def test_an_announced_drill_tells_the_people_it_will_test_beforehand_without_asking_an_answer(
        runtime, db, clock, tree, settings):
    drill_id = await schedule(runtime, due_at=clock.now() + 48 * HOUR, hazard="mountain_torrent")
    assert await drill_tick(runtime) == 0 and await warnings_of_status(db, "test") == []
    clock.advance(24 * HOUR)  # DRILL_NOTICE_HOURS = 24 before the drill
    assert await drill_tick(runtime) == 0
    (notice,) = await warnings_of_status(db, "test")
    assert notice.expires_at == clock.now() + 24 * HOUR and notice.policy["purpose"] == "drill_notice"
    async with db.session() as s:
        notices = list((await s.execute(select(Notice).where(Notice.warning_id == notice.id))).scalars())
        rows = list((await s.execute(select(OutboxMessage).where(OutboxMessage.warning_id == notice.id))).scalars())
        texts = await render_outbox(s, rows=rows, settings=settings, now=clock.now())
        assert (await s.get(Drill, drill_id)).notice_warning_id == notice.id
    # The roles red 山洪 will reach (torrent warners too), told and not chased.
    assert notices and not any(n.requires_ack or n.next_action_at for n in notices)
    assert {r.channel for r in rows} == {"sms"}
    body = next(iter(texts.values())).body
    assert body.startswith("【温岭防指】演练预告:7月3日16:00将开展太平街道山洪预警叫应演练"), body
    assert "本条无需回复" in body, body
    clock.advance(HOUR)
    assert await drill_tick(runtime) == 0 and len(await warnings_of_status(db, "test")) == 1  # told once
    clock.advance(23 * HOUR)
    assert await drill_tick(runtime) == 1
    assert len(await warnings_of_status(db, "exercise")) == 1
