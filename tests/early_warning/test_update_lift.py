from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from tests.early_warning.conftest import red_typhoon
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning.identifiers import CHINA_TZ
from warning_service.early_warning.models import EarlyWarning, WarningRevision
from warning_service.notice.models import Notice


async def rows(db, model, *where):
    async with db.session() as s:
        return (await s.execute(select(model).where(*where))).scalars().all()


async def mark_sent(db, warning_id):
    async with db.session() as s:
        await s.execute(update(OutboxMessage).where(OutboxMessage.warning_id == warning_id,
                                                    OutboxMessage.status == "queued").values(status="sent"))


async def test_upgrade_demands_a_fresh_acknowledgment_under_the_new_policy(client, duty, db, tree, clock):
    r = await client.post("/api/v1/warnings", headers=duty, json={
        "hazard": "rainstorm", "level": "orange", "description": "强降雨持续。", "targets": ["331081001"]})
    wid = r.json()["id"]
    # orange reaches grid and village persons (直达网格); one of them has answered
    first = await rows(db, Notice, Notice.warning_id == wid)
    assert {n.role for n in first} == {"village_responsible", "grid_responsible"}
    async with db.session() as s:
        await s.execute(update(Notice).where(Notice.id == first[0].id).values(
            state="acknowledged", acknowledged_at=clock.now(), next_action_at=None, step="done"))
    await mark_sent(db, wid)
    clock.advance(600)
    r = await client.post(f"/api/v1/warnings/{wid}/update", headers=duty, json={"level": "red"})
    assert r.status_code == 200, r.text
    assert r.json()["upgraded"] is True and r.json()["new_recipients"] == 1  # the town is reached at red
    after = await rows(db, Notice, Notice.warning_id == wid)
    assert len(after) == 7
    assert all(n.state == "pending" and n.round == 2 for n in after)
    red_deadline = clock.now() + timedelta(minutes=3)
    assert all(n.deadline == red_deadline and n.next_action_at == red_deadline for n in after)
    w = (await rows(db, EarlyWarning, EarlyWarning.id == wid))[0]
    assert w.policy["level"] == "red" and w.policy["ack_deadline"] == 180 and w.ack_round == 2
    msgs = await rows(db, OutboxMessage, OutboxMessage.warning_id == wid, OutboxMessage.revision == 2)
    kinds = {(m.kind, m.channel) for m in msgs}
    assert ("update", "sms") in kinds and ("alert", "sms") in kinds
    # the six reached at orange hear the upgrade; the town person, new at red, gets the full alert
    assert len([m for m in msgs if m.kind == "update" and m.channel == "sms"]) == 6
    assert len([m for m in msgs if m.kind == "alert" and m.channel == "sms"]) == 1


async def test_text_update_reaches_everyone_with_a_deadline_counted_from_the_update(client, duty, db, tree,
                                                                                   clock):
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001"]))
    wid = r.json()["id"]
    before = await rows(db, Notice, Notice.warning_id == wid)
    clock.advance(60)
    r = await client.post(f"/api/v1/warnings/{wid}/update", headers=duty,
                          json={"description": "台风路径北移,风力增强至15级。"})
    assert r.json()["upgraded"] is False and r.json()["new_recipients"] == 0
    after = await rows(db, Notice, Notice.warning_id == wid)
    # a deadline that passed while the update was written would ask for the impossible
    assert all(b.deadline is not None for b in before)
    assert all(n.deadline == clock.now() + timedelta(minutes=3) == n.next_action_at for n in after)
    # the unsent revision-1 alerts are superseded by the update, which carries the full text
    old = await rows(db, OutboxMessage, OutboxMessage.warning_id == wid, OutboxMessage.revision == 1,
                     OutboxMessage.kind == "alert")
    assert all(m.status == "cancelled" and m.error_code == "superseded" for m in old)
    assert len(await rows(db, OutboxMessage, OutboxMessage.warning_id == wid, OutboxMessage.kind == "update",
                          OutboxMessage.channel == "sms")) == 7


async def test_widening_targets_reaches_new_people_only_once(client, duty, db, tree):
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001001"]))
    wid = r.json()["id"]
    r = await client.post(f"/api/v1/warnings/{wid}/update", headers=duty,
                          json={"targets": ["331081001001", "331081002"]})
    assert r.json()["new_recipients"] == 4  # town 002, its village and two grids
    r = await client.post(f"/api/v1/warnings/{wid}/update", headers=duty,
                          json={"targets": ["331081001001", "331081002"]})
    assert r.json()["new_recipients"] == 0
    assert len(await rows(db, Notice, Notice.warning_id == wid)) == 7


async def test_lift_stops_calling_and_tells_only_those_already_reached(client, duty, db, tree, clock):
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001001"]))
    wid = r.json()["id"]
    # only the village person's SMS went out before the lift
    village = tree.person("331081001001", "village_responsible")
    async with db.session() as s:
        nid = (await s.execute(select(Notice.id).where(Notice.warning_id == wid, Notice.person_id == village))
               ).scalar_one()
        await s.execute(update(OutboxMessage).where(OutboxMessage.notice_id == nid,
                                                    OutboxMessage.channel == "sms").values(status="delivered"))
    clock.advance(120)
    r = await client.post(f"/api/v1/warnings/{wid}/lift", headers=duty, json={"reason": "台风已减弱"})
    assert r.status_code == 200 and r.json()["state"] == "lifted"
    notices = await rows(db, Notice, Notice.warning_id == wid)
    assert all(n.state == "closed" and n.next_action_at is None for n in notices)
    queued = await rows(db, OutboxMessage, OutboxMessage.warning_id == wid, OutboxMessage.status == "queued")
    assert sorted((m.kind, m.notice_id, m.channel) for m in queued) == [("cancel", nid, "email"),
                                                                         ("cancel", nid, "sms")]
    revs = await rows(db, WarningRevision, WarningRevision.warning_id == wid)
    assert [r.msg_type for r in sorted(revs, key=lambda r: r.revision)] == ["alert", "cancel"]
    assert revs[-1].references and revs[0].identifier in revs[-1].references
    r = await client.post(f"/api/v1/warnings/{wid}/update", headers=duty, json={"level": "orange"})
    assert r.status_code == 409


async def test_expiry_ends_calling(client, duty, db, tree, clock, runtime):
    from warning_service.early_warning.service import expire_due

    expires = (clock.now() + timedelta(hours=1)).isoformat()
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001001"], expires_at=expires))
    wid = r.json()["id"]
    async with db.session() as s:
        assert await expire_due(s, now=clock.now()) == []
    clock.advance(3601)
    async with db.session() as s:
        assert await expire_due(s, now=clock.now()) == [wid]
    assert all(n.state == "closed" for n in await rows(db, Notice, Notice.warning_id == wid))
    assert not await rows(db, OutboxMessage, OutboxMessage.warning_id == wid, OutboxMessage.status == "queued")


async def test_policy_snapshot_is_kept_when_the_file_changes(client, duty, db, tree, runtime, tmp_path):
    from warning_service.early_warning.policy import load_policy

    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001001"]))
    wid = r.json()["id"]
    f = tmp_path / "policy.toml"
    f.write_text('[levels.red]\nack_deadline = "10m"\n', encoding="utf-8")
    runtime.policy = load_policy(f)
    r2 = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001001"]))
    w1, w2 = (await rows(db, EarlyWarning, EarlyWarning.id == wid))[0], (
        await rows(db, EarlyWarning, EarlyWarning.id == r2.json()["id"]))[0]
    assert w1.policy["ack_deadline"] == 180 and w2.policy["ack_deadline"] == 600
    assert w2.policy["source"] == str(f)


async def test_warning_detail_and_notices_are_scoped(client, duty, province_duty, db, tree):
    r = await client.post("/api/v1/warnings", headers=province_duty, json=red_typhoon(["33"]))
    wid = r.json()["id"]
    assert r.json()["recipient_count"] == 15
    # the county officer sees the province-wide warning but only their county's notices
    page = (await client.get(f"/api/v1/warnings/{wid}/notices", headers=duty, params={"limit": 100})).json()
    assert page["total"] == 11
    assert all(i["region_code"].startswith("331081") for i in page["items"])
    assert page["items"][0]["region_path"].startswith("浙江省/台州市/温岭市")
    listed = (await client.get("/api/v1/warnings", headers=duty)).json()
    assert [w["id"] for w in listed["items"]] == [wid]
    # ...and may not lift what reaches beyond the county
    r = await client.post(f"/api/v1/warnings/{wid}/lift", headers=duty, json={"reason": "台风已减弱"})
    assert r.status_code == 403
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001"]))
    other = await client.get(f"/api/v1/warnings/{r.json()['id']}", headers=province_duty)
    assert other.status_code == 200
    lh = await client.get("/api/v1/warnings", headers=duty, params={"region": "331081002"})
    assert lh.json()["total"] == 1


async def test_update_asks_again_only_those_who_have_not_answered(client, duty, db, tree, clock, settings):
    from warning_service.early_warning.messages import render_outbox

    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001001"]))
    wid = r.json()["id"]
    first = await rows(db, Notice, Notice.warning_id == wid)
    async with db.session() as s:
        await s.execute(update(Notice).where(Notice.id == first[0].id).values(
            state="acknowledged", acknowledged_at=clock.now(), next_action_at=None, step="done"))
    await mark_sent(db, wid)
    clock.advance(600)
    r = await client.post(f"/api/v1/warnings/{wid}/update", headers=duty, json={"description": "台风北移。"})
    assert r.status_code == 200, r.text
    msgs = await rows(db, OutboxMessage, OutboxMessage.warning_id == wid, OutboxMessage.kind == "update",
                      OutboxMessage.channel == "sms")
    async with db.session() as s:
        texts = {m.notice_id: t.body for m, t in zip(msgs, (await render_outbox(
            s, rows=msgs, settings=settings, now=clock.now())).values(), strict=True)}
    assert "您已确认,无需回复" in texts[first[0].id] and "回1" not in texts[first[0].id]
    new_deadline = (clock.now() + timedelta(minutes=3)).astimezone(CHINA_TZ).strftime("%H:%M")
    others = [t for nid, t in texts.items() if nid != first[0].id]
    assert others and all(f"请{new_deadline}前回1确认" in t and "更新" in t for t in others)


async def test_lift_needs_a_reason_and_every_lift_message_says_it(client, duty, db, tree, clock, settings):
    from warning_service.early_warning.messages import render_outbox

    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001001"]))
    wid = r.json()["id"]
    await mark_sent(db, wid)
    r = await client.post(f"/api/v1/warnings/{wid}/lift", headers=duty)
    assert r.status_code in (400, 422) and "reason" in r.text
    assert (await rows(db, EarlyWarning, EarlyWarning.id == wid))[0].state == "active"
    r = await client.post(f"/api/v1/warnings/{wid}/lift", headers=duty, json={"reason": "台风已减弱为热带风暴"})
    assert r.status_code == 200, r.text
    lifts = await rows(db, OutboxMessage, OutboxMessage.warning_id == wid, OutboxMessage.kind == "cancel")
    async with db.session() as s:
        msgs = await render_outbox(s, rows=lifts, settings=settings, now=clock.now())
    assert {m.channel for m in lifts} >= {"sms", "email", "broadcast"}
    assert all("台风已减弱为热带风暴" in m.body for m in msgs.values())
    loudspeaker = [msgs[m.id].body for m in lifts if m.channel == "broadcast"]
    assert loudspeaker and all("已转移的群众请暂不返回" in b for b in loudspeaker)
