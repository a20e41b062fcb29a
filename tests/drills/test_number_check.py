"""号码核验: every person of the region gets a 【测试】 SMS asking a reply; numbers that fail delivery are listed at
once, those silent (or answered only by a duty officer's 代叫应) once the deadline passed; roster health and the
人员名册 page show them with the check's date; CSV and XLSX of the failures."""

from __future__ import annotations

import io
from datetime import timedelta

from openpyxl import load_workbook
from sqlalchemy import select, update

from tests.drills.conftest import HOUR, TOWN, schedule, warnings_of_status
from tests.factories import login
from warning_service.auth.models import User
from warning_service.delivery.models import OutboxMessage
from warning_service.drills.jobs import drill_tick
from warning_service.early_warning.messages import render_outbox
from warning_service.notice.answer import acknowledge
from warning_service.notice.models import Notice
from warning_service.person import service as people
from warning_service.person.models import PersonUpdate

VILLAGE = "331081001001"  # 横湖村


async def test_number_check_lists_failed_and_silent_numbers_and_roster_health_shows_them(
        client, runtime, db, clock, tree, settings):
    drill_id = await schedule(runtime, kind="number_check", answer_minutes=120)
    clock.advance(HOUR)
    assert await drill_tick(runtime) == 1
    (check,) = await warnings_of_status(db, "test")
    async with db.session() as s:
        notices = {n.person_id: n for n in (await s.execute(select(Notice).where(
            Notice.warning_id == check.id))).scalars()}
        rows = list((await s.execute(select(OutboxMessage).where(OutboxMessage.warning_id == check.id))).scalars())
        texts = await render_outbox(s, rows=rows, settings=settings, now=clock.now())
    # Everyone in 太平街道 (town, 2 villages, 4 grids), by SMS only, asked to answer, nobody chased.
    assert len(notices) == 7 and {r.channel for r in rows} == {"sms"} and len(rows) == 7
    assert all(n.requires_ack and n.deadline == clock.now() + 2 * HOUR for n in notices.values())
    body = next(iter(texts.values())).body
    assert body.startswith("【测试】【") and "号码核验" in body and "不是预警" in body and "预警:" not in body
    answered, dead, proxied = (tree.person(TOWN, "town_responsible"), tree.person(VILLAGE, "village_responsible"),
                               tree.person(VILLAGE + "01", "grid_responsible"))
    async with db.session() as s:
        await acknowledge(s, notice_id=notices[answered].id, path="sms_reply", now=clock.now() + HOUR / 6)
        officer = (await s.execute(select(User.id).where(User.username == "wl_duty"))).scalar_one()
        await acknowledge(s, notice_id=notices[proxied].id, path="proxy", proxy_method="phone", actor_user_id=officer,
                          note="打电话确认", now=clock.now() + HOUR / 6)
        await s.execute(update(OutboxMessage).where(OutboxMessage.notice_id == notices[dead].id).values(
            status="failed", error_message="空号"))
        await s.execute(update(OutboxMessage).where(OutboxMessage.notice_id != notices[dead].id,
                                                    OutboxMessage.warning_id == check.id).values(status="delivered"))
    duty = await login(client, "wl_duty")
    # Before the deadline only the failed number is known.
    early = (await client.get(f"/api/v1/drills/{drill_id}/failures", headers=duty)).json()
    assert [(f["person_id"], f["reason"], f["detail"]) for f in early] == [(dead, "failed", "空号")]
    clock.advance(2 * HOUR + timedelta(minutes=1))
    await drill_tick(runtime)
    late = (await client.get(f"/api/v1/drills/{drill_id}/failures", headers=duty)).json()
    by_person = {f["person_id"]: f["reason_zh"] for f in late}
    assert answered not in by_person and by_person[dead] == "未送达" and by_person[proxied] == "未回复"
    assert len(by_person) == 6  # 7 people, one answered from the phone
    listed = (await client.get("/api/v1/drills", headers=duty)).json()[0]["result"]
    assert (listed["failed"], listed["silent"], listed["required"]) == (1, 5, 7)
    # Roster health, API and page, with the check's date.
    health = (await client.get("/api/v1/people/health", headers=duty, params={"level": "village"})).json()
    assert health["number_check_failed_total"] == 6
    assert {f["person_id"] for f in health["number_check_failed"]} == set(by_person)
    assert health["number_check_failed"][0]["checked_at"].startswith("2026-07-01T09:00")
    client.cookies.set("ws_token", duty["Authorization"][7:])
    page = await client.get("/console/people")
    assert page.status_code == 200 and "号码核验未通过" in page.text and "2026-07-01核验" in page.text
    assert '<b class="late" id="check-failed">6</b>' in page.text
    csv = await client.get(f"/api/v1/drills/{drill_id}/failures.csv", headers=duty)
    assert csv.status_code == 200 and "未送达" in csv.content.decode("utf-8-sig")
    xlsx = await client.get(f"/api/v1/drills/{drill_id}/failures.xlsx", headers=duty)
    ws = load_workbook(io.BytesIO(xlsx.content)).active
    assert ws.max_row == 2 + 6 and ws["A2"].value == "姓名"
    # A second check the dead number now passes takes it off the roster's list.
    second = await schedule(runtime, kind="number_check", region_code=VILLAGE, answer_minutes=30)
    clock.advance(HOUR)
    await drill_tick(runtime)
    async with db.session() as s:
        new = (await s.execute(select(Notice.id).join(OutboxMessage, OutboxMessage.notice_id == Notice.id).where(
            Notice.person_id == dead, Notice.id > notices[dead].id))).scalar_one()
        await acknowledge(s, notice_id=new, path="sms_reply", now=clock.now() + timedelta(minutes=5))
    clock.advance(timedelta(minutes=31))
    async with db.session() as s:
        report = await people.roster_health(s, scope_path="/33/", level="village", now=clock.now())
    assert dead not in {f["person_id"] for f in report["number_check_failed"]}
    # 横湖村's grids stayed silent again (now dated by the second check); 西门村's three still by the first.
    assert second and report["number_check_failed_total"] == 5
    dates = {f["person_id"]: f["checked_at"][:16] for f in report["number_check_failed"]}
    assert dates[proxied] == "2026-07-01T12:01" and list(dates.values()).count("2026-07-01T09:00") == 3
    # A number corrected since its failed check is no longer the one that failed: it waits for the next check.
    async with db.session() as s:
        person = await people.get(s, person_id=proxied)
        await people.update(s, person=person, data=PersonUpdate(phone="13911112222"), now=clock.now())
        report = await people.roster_health(s, scope_path="/33/", level="village", now=clock.now())
    assert proxied not in {f["person_id"] for f in report["number_check_failed"]}
