"""Tasks are chased like primary notices; registers refuse bad files whole and stay inside the caller's scope."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from tests.evacuation.conftest import PROVINCE, TOWN, XIMEN, count, issue, tasks_by_household, token_for, upload, xlsx
from tests.factories import login
from warning_service.delivery.dispatcher import dispatch_once
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning import service as warnings
from warning_service.early_warning.models import WarningUpdate
from warning_service.escalation.service import sweep
from warning_service.evacuation.models import DangerZone, Household
from warning_service.notice.models import Notice


async def test_a_silent_keeper_is_re_called_once_for_all_their_households_and_one_answer_cancels_the_chase(
    runtime, db, town, client, clock, console
):
    wid = await issue(runtime, targets=[TOWN])
    tasks = await tasks_by_household(db, wid)
    nid = tasks["H1"].notice_id  # 横湖村's keeper: 王大伯 and 李阿婆, one notice
    assert tasks["H2"].notice_id == nid
    async with db.session() as s:
        deadline = (await s.get(Notice, nid)).deadline  # type: ignore[union-attr]
    clock.set(deadline + timedelta(seconds=1))
    async with db.session() as s:
        res = await sweep(s, now=clock.now(), batch_size=100)
    assert res.recalls >= 3  # three tasks and the special notices, not only primary notices
    async with db.session() as s:
        recall = (
            await s.execute(select(OutboxMessage).where(OutboxMessage.notice_id == nid, OutboxMessage.kind == "recall"))
        ).scalar_one()
        n = await s.get(Notice, nid)
    assert n.attempt_count == 1 and n.step == "recall"  # type: ignore[union-attr]
    console.sent.clear()
    await dispatch_once(runtime, batch_size=200)
    text = next(m.body for m in console.sent if m.metadata["outbox_id"] == str(recall.id))
    # One re-call for the keeper (not one per household), naming their households.
    assert "王大伯" in text and "李阿婆" in text and "2户4人" in text

    clock.set(clock.now() + timedelta(minutes=10))
    async with db.session() as s:
        await sweep(s, now=clock.now(), batch_size=100)
    queued = OutboxMessage.notice_id == nid, OutboxMessage.status == "queued", OutboxMessage.kind == "recall"
    assert await count(db, OutboxMessage, *queued) == 1
    r = await client.post(f"/e/{token_for(runtime.settings, nid)}/ack")
    assert r.status_code == 303
    assert await count(db, OutboxMessage, *queued) == 0
    async with db.session() as s:
        assert (await s.get(Notice, nid)).state == "acknowledged"  # type: ignore[union-attr]


async def test_a_file_with_bad_rows_changes_nothing_and_names_every_bad_row(client, duty, town, tree, db):
    before = await count(db, Household)
    bad = xlsx(
        [
            ["code", "zone_code", "name", "people", "phone", "vulnerable", "keeper"],
            ["H9", "Z1", "孙家", 2, "", "", tree.person(XIMEN, "village_responsible")],
            ["H10", "Z404", "周家", 0, "12345", "外星人", "13999999999"],
            ["H9", "Z2", "", 3, "", "", 999999],
        ]
    )
    r = await upload(client, duty, "households", "bad.xlsx", bad)
    assert r.status_code == 422
    body = r.json()["detail"]
    problems = {(e["line"], e["field"]) for e in body["errors"]}
    assert {
        (3, "zone_code"),
        (3, "people"),
        (3, "phone"),
        (3, "vulnerable"),
        (3, "keeper"),
        (4, "code"),
        (4, "name"),
        (4, "keeper"),
    } <= problems
    assert all(e["message"] and e["message_zh"] for e in body["errors"])
    assert "未导入任何数据" in body["message_zh"]
    assert await count(db, Household) == before


async def test_thresholds_must_say_hazard_and_level(client, duty, town, db):
    r = await upload(
        client,
        duty,
        "zones",
        "z.csv",
        "code,name,kind,region_code,thresholds,note\nZ9,某区,山洪危险区,331081001001,山洪-很大,\n".encode(),
    )
    assert r.status_code == 422 and r.json()["detail"]["errors"][0]["field"] == "thresholds"
    assert await count(db, DangerZone, DangerZone.code == "Z9") == 0


async def test_registers_stay_inside_the_callers_scope(client, duty, town, tree):
    lh = await login(client, "lh_duty")  # 临海's duty officer
    r = await client.get("/api/v1/evacuation/registers/households", headers=lh)
    assert r.status_code == 200 and r.json()["total"] == 0
    zones = (await client.get("/api/v1/evacuation/registers/zones", headers=duty)).json()["items"]
    assert (await client.get(f"/api/v1/evacuation/registers/zones/{zones[0]['id']}", headers=lh)).status_code == 404
    r = await upload(
        client,
        lh,
        "zones",
        "z.csv",
        "code,name,kind,region_code,thresholds,note\nZ8,某区,山洪危险区,331081001001,山洪:红,\n".encode(),
    )
    assert r.status_code == 422 and r.json()["detail"]["errors"][0]["field"] == "region_code"
    audit = await login(client, "wl_audit")
    assert (await client.get("/api/v1/evacuation/registers/zones", headers=audit)).status_code == 200
    body = {
        "code": "Z7",
        "name": "新区",
        "kind": "low_lying",
        "region_code": "331081001001",
        "thresholds": {"rainstorm": "orange"},
    }
    assert (await client.post("/api/v1/evacuation/registers/zones", headers=audit, json=body)).status_code == 403
    r = await client.post("/api/v1/evacuation/registers/zones", headers=duty, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["thresholds"] == {"rainstorm": "orange"} and r.json()["town_code"] == TOWN
    assert (await client.post("/api/v1/evacuation/registers/zones", headers=duty, json=body)).status_code == 409
    zid = r.json()["id"]
    assert (await client.delete(f"/api/v1/evacuation/registers/zones/{zid}", headers=duty)).status_code == 204
    assert (await client.get(f"/api/v1/evacuation/registers/zones/{zid}", headers=duty)).json()["active"] is False


async def test_a_forged_task_link_finds_nothing(client, runtime, town):
    await issue(runtime, targets=[TOWN])
    assert (await client.get("/e/AAAAAAAAAAAAAAAAAAAAAAAAAA")).status_code == 404
    # A primary notice's token is no task.
    assert (await client.get(f"/e/{token_for(runtime.settings, 1)}")).status_code == 404


async def test_an_upgrade_adds_households_to_the_keepers_one_notice_and_asks_again(
    runtime, db, town, clock, client, console
):
    wid = await issue(runtime, targets=[TOWN], level="orange")
    before = await tasks_by_household(db, wid)
    assert sorted(before) == ["H3"]  # only 山洪:橙 zones
    nid = before["H3"].notice_id
    # 西门村's keeper also keeps 王大伯 (横湖村, cleared only on red), and has answered for 陈家 already.
    async with db.session() as s:
        await s.execute(update(Household).where(Household.code == "H1").values(keeper_id=town.people["ximen"]))
    r = await client.post(f"/e/{token_for(runtime.settings, nid)}/ack")
    assert r.status_code == 303
    async with db.session() as s:
        await warnings.update_warning(
            s,
            warning_id=wid,
            data=WarningUpdate(level="red"),
            actor=PROVINCE,
            policy=runtime.policy,
            settings=runtime.settings,
            now=clock.now(),
        )
    after = await tasks_by_household(db, wid)
    assert sorted(after) == ["H1", "H2", "H3"]
    # 王大伯 joins the keeper's one notice, which asks them again; 李阿婆's keeper gets a notice of their own.
    assert after["H1"].notice_id == nid and after["H2"].notice_id != nid
    assert await count(db, Notice, Notice.warning_id == wid, Notice.reason == "evacuation") == 2
    async with db.session() as s:
        n = await s.get(Notice, nid)
        assert n.state == "pending" and n.acknowledged_at is None and n.next_action_at is not None  # type: ignore[union-attr]
    console.sent.clear()
    while await dispatch_once(runtime, batch_size=200):
        pass
    again = [m.body for m in console.sent if m.metadata["kind"] == "evacuation" and m.metadata["notice_id"] == str(nid)]
    # The first text, still unsent, was superseded by the revision's, which lists both households.
    assert len(again) == 1 and "2户7人" in again[0] and "王大伯" in again[0] and "陈家" in again[0]
