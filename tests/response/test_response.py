"""应急响应: starting and raising sends 到岗 demands to the roles the level names and chases them; ending stops."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from tests.escalation.conftest import COUNTY, MIN, TOWN, at, issue, messages, reload, upgrade
from tests.factories import build_tree, login, make_user
from warning_service.early_warning.messages import render_outbox
from warning_service.early_warning.models import EarlyWarning
from warning_service.early_warning.policy import PolicyError, load_policy
from warning_service.errors import Conflict
from warning_service.ledger.models import LedgerPending
from warning_service.notice.answer import acknowledge
from warning_service.notice.models import Notice
from warning_service.person import service as people
from warning_service.person.models import PersonCreate
from warning_service.response import service
from warning_service.response.models import (
    ResponseAdjust,
    ResponseDemand,
    ResponseEnd,
    ResponseLevel,
    ResponseStart,
    ResponseWarning,
)

ACTOR = "user:duty"


@pytest.fixture
async def county(db, clock):
    tree = await build_tree(db, now=clock.now())
    async with db.session() as s:
        for i, name in enumerate(("水利局", "应急管理局")):
            await people.create(s, data=PersonCreate(region_code=COUNTY, name=f"{name}联络员", role="member_unit",
                                                     phone=f"1350000000{i}"), now=clock.now())
    return tree


async def demands(db, response_id: int) -> list[Notice]:
    async with db.session() as s:
        return list((await s.execute(select(Notice).join(ResponseDemand, ResponseDemand.notice_id == Notice.id)
                                     .where(ResponseDemand.response_id == response_id).order_by(Notice.id))).scalars())


async def start(db, clock, wid: int, level: str, policy=None):
    async with db.session() as s:
        resp, sent = await service.start(s, data=ResponseStart(
            region_code=COUNTY, hazard="typhoon", level=ResponseLevel(level), warning_id=wid,
            decided_by="县防指指挥长"),
            actor=ACTOR, policy=policy or load_policy(None), now=clock.now())
        return resp.id, sent


async def test_raising_to_level_ii_demands_attendance_of_the_configured_roles_and_chases_them(
        db, clock, settings, county):
    t0 = clock.now()
    wid = await issue(db, settings, clock, targets=[COUNTY], level="yellow")
    rid, sent = await start(db, clock, wid, "IV")
    assert sent == 2  # Ⅳ级: the two town heads of the county
    assert {n.role for n in await demands(db, rid)} == {"town_responsible"}

    clock.set(t0 + 10 * MIN)
    async with db.session() as s:
        _, raised = await service.adjust(s, response_id=rid, data=ResponseAdjust(level=ResponseLevel.II,
                                         decided_by="县长", reason="台风登陆"), actor=ACTOR, policy=load_policy(None),
                                         now=clock.now())
    assert raised == 3  # Ⅱ级 adds the county head and the two member units; the town heads are not asked twice
    ds = await demands(db, rid)
    assert sorted(n.role for n in ds) == ["county_responsible", "member_unit", "member_unit", "town_responsible",
                                          "town_responsible"]
    new = [n for n in ds if n.role != "town_responsible"]
    assert {n.deadline for n in new} == {t0 + 25 * MIN}  # Ⅱ级: 15 minutes
    [sms] = await messages(db, new[0].id)
    assert (sms.kind, sms.channel) == ("attendance", "sms")
    async with db.session() as s:
        text = (await render_outbox(s, rows=[sms], settings=settings))[sms.id].body
    assert "到岗" in text and "/a/" in text

    # one member unit confirms; the others are re-called by voice every 5 minutes, three times, then time out
    async with db.session() as s:
        await acknowledge(s, notice_id=new[1].id, path="sms_reply", now=t0 + 12 * MIN)
    # the new demands are due at 25, the town heads' (Ⅳ级, 30 minutes) at 30: both now on Ⅱ级's clock
    for minute, calls, timed_out in ((25, 2, 0), (30, 4, 0), (35, 4, 0), (40, 2, 2), (45, 0, 2)):
        r = await at(db, clock, t0, minute)
        assert (r.recalls, r.timed_out, r.escalated, r.duty_room) == (calls, timed_out, 0, 0), minute
    assert [m.channel for m in await messages(db, new[0].id)] == ["sms", "voice", "voice", "voice"]
    states = {n.id: (await reload(db, n.id)).state for n in ds}
    assert states[new[1].id] == "acknowledged"
    assert states[new[0].id] == "timed_out" and states[new[2].id] == "timed_out"
    # nobody above is told about a missed 到岗: the notices are alone in their chain
    async with db.session() as s:
        assert (await s.execute(select(Notice).where(Notice.reason.in_(("escalation", "duty_room"))))).first() is None
        att = (await service.attendance(s, [rid], now=clock.now()))[rid]
    assert (att["demanded"], att["confirmed"], att["timed_out"]) == (5, 1, 4)
    assert att["rate"] == 0.2 and att["by_role"]["member_unit"]["rate"] == 0.5
    assert att["by_role"]["member_unit"]["role_zh"] == "成员单位联络员"


async def test_level_roles_are_configurable_and_a_bad_file_names_the_key(db, clock, settings, county, tmp_path: Path):
    f = tmp_path / "p.toml"
    f.write_text('[responses.II]\nroles = ["member_unit"]\nack_deadline = "5m"\n', encoding="utf-8")
    wid = await issue(db, settings, clock, targets=[COUNTY], level="yellow")
    rid, sent = await start(db, clock, wid, "II", policy=load_policy(f))
    assert sent == 2 and {n.role for n in await demands(db, rid)} == {"member_unit"}
    assert {n.deadline for n in await demands(db, rid)} == {clock.now() + 5 * MIN}
    f.write_text('[responses.V]\nroles = ["member_unit"]\n', encoding="utf-8")
    with pytest.raises(PolicyError, match="responses.V"):
        load_policy(f)
    f.write_text('[responses.I]\nwarnings = { colour = "red" }\n', encoding="utf-8")
    with pytest.raises(PolicyError, match="responses.I.warnings"):
        load_policy(f)


async def test_ending_closes_open_demands_and_a_second_start_is_refused(db, clock, settings, county):
    wid = await issue(db, settings, clock, targets=[COUNTY], level="yellow")
    rid, _ = await start(db, clock, wid, "III")
    with pytest.raises(Conflict):
        await start(db, clock, wid, "II")
    async with db.session() as s:
        await service.end(s, response_id=rid, data=ResponseEnd(decided_by="县防指指挥长"), actor=ACTOR,
                          now=clock.now() + MIN)
    assert {n.state for n in await demands(db, rid)} == {"closed"}
    assert (await at(db, clock, clock.now(), 60)).claimed == 0
    async with db.session() as s:
        acts = (await s.execute(select(LedgerPending.action).where(LedgerPending.subject_type == "response")
                                .order_by(LedgerPending.id))).scalars().all()
    assert acts == ["response.started", "response.ended"]
    rid2, sent = await start(db, clock, wid, "II")  # a new response may start once the last has ended
    assert rid2 != rid and sent == 5  # a new response asks again: Ⅱ级's roles in the county


async def test_upgrading_the_warning_does_not_close_attendance_demands(db, clock, settings, county):
    wid = await issue(db, settings, clock, targets=[TOWN], level="orange")
    rid, sent = await start(db, clock, wid, "IV")
    await upgrade(db, settings, clock, wid, level="red", policy=load_policy(None))
    assert sent == 2 and {n.state for n in await demands(db, rid)} == {"pending"}


async def test_api_start_adjust_end_in_scope(client, db, clock, settings, county):
    await make_user(db, username="wl", role="duty_officer", region=COUNTY, now=clock.now())
    await make_user(db, username="lh", role="duty_officer", region="331082", now=clock.now())
    wid = await issue(db, settings, clock, targets=[COUNTY], level="yellow")
    h = await login(client, "wl")
    body = {"region_code": COUNTY, "hazard": "typhoon", "level": "III", "warning_id": wid, "decided_by": "县防指指挥长"}
    other = await login(client, "lh")
    assert (await client.post("/api/v1/responses", json=body, headers=other)).status_code == 403
    r = await client.post("/api/v1/responses", json=body, headers=h)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert r.json()["level_zh"] == "Ⅲ级" and r.json()["attendance"]["demanded"] == 3
    bad = await client.post(f"/api/v1/responses/{rid}/level", json={"level": "V", "decided_by": "x"}, headers=h)
    assert bad.status_code == 422
    up = await client.post(f"/api/v1/responses/{rid}/level", json={"level": "II", "decided_by": "县长"}, headers=h)
    assert up.status_code == 200 and up.json()["attendance"]["demanded"] == 5
    assert (await client.get(f"/api/v1/responses/{rid}", headers=other)).status_code == 403
    client.cookies.set("ws_token", h["Authorization"][7:])
    page = await client.get("/console/responses")
    assert page.status_code == 200 and "到岗率" in page.text and "Ⅱ级" in page.text and "县长" in page.text
    end = await client.post(f"/api/v1/responses/{rid}/end", json={"decided_by": "县防指指挥长"}, headers=h)
    assert end.status_code == 200 and end.json()["state"] == "ended"


async def test_a_warning_issued_under_level_i_reaches_every_grid_with_a_3_minute_deadline(db, clock, settings, county):
    trigger = await issue(db, settings, clock, targets=[COUNTY], level="yellow")
    rid, _ = await start(db, clock, trigger, "I")
    wid = await issue(db, settings, clock, targets=[TOWN], level="orange")  # orange alone: villages and towns
    async with db.session() as s:
        w = await s.get(EarlyWarning, wid)
        roles = set((await s.execute(select(Notice.role).where(Notice.warning_id == wid,
                                                               Notice.reason == "primary"))).scalars())
        linked = (await s.execute(select(ResponseWarning.warning_id).where(
            ResponseWarning.response_id == rid).order_by(ResponseWarning.warning_id))).scalars().all()
    assert w.policy["response_level"] == "I" and w.policy["ack_deadline"] == 180
    assert "grid_responsible" in roles
    assert linked == [trigger, wid]
    # another hazard is not under this response
    other = await issue(db, settings, clock, targets=[TOWN], level="orange", hazard="geological")
    async with db.session() as s:
        assert "response_level" not in (await s.get(EarlyWarning, other)).policy
