"""Done-when, end to end: a red 山洪 warning on a town opens exactly the households in zones whose threshold it
meets; decisions update the board; the lift keeps them out until 解除转移; an early return is flagged; special
places and people are reached by name."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from tests.evacuation.conftest import TOWN, count, issue, lift, tasks_by_household, token_for
from warning_service.delivery.dispatcher import dispatch_once
from warning_service.delivery.models import OutboxMessage
from warning_service.evacuation.models import EvacuationTask, SpecialNotice
from warning_service.ledger.models import LedgerPending
from warning_service.notice.models import Notice


async def sent_texts(runtime, console) -> list:
    console.sent.clear()
    while await dispatch_once(runtime, batch_size=200):
        pass
    return list(console.sent)


async def board(client, headers, wid):
    r = await client.get(f"/api/v1/evacuation/warnings/{wid}/board", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_red_torrent_on_a_town_opens_exactly_the_zones_whose_threshold_it_meets(runtime, db, town, tree, console):
    wid = await issue(runtime, targets=[TOWN])
    tasks = await tasks_by_household(db, wid)
    # Z1 (山洪:红) and Z2 (山洪:橙 ≤ red) are in the town; Z3 clears only for 暴雨; Z4 lies in another town.
    assert sorted(tasks) == ["H1", "H2", "H3"]
    async with db.session() as s:
        ns = {
            n.id: n
            for n in (
                await s.execute(select(Notice).where(Notice.warning_id == wid, Notice.reason == "evacuation"))
            ).scalars()
        }
    # ONE notice per 包户责任人, listing their households; the tasks (and the board) stay per household.
    assert {t.notice_id for t in tasks.values()} == set(ns) and len(ns) == 2
    assert tasks["H1"].notice_id == tasks["H2"].notice_id
    assert ns[tasks["H1"].notice_id].person_id == town.people["henghu"]
    assert ns[tasks["H3"].notice_id].person_id == town.people["ximen"]
    assert all(n.deadline is not None and n.state == "pending" for n in ns.values())
    texts = await sent_texts(runtime, console)
    evac = [m for m in texts if m.metadata["kind"] == "evacuation"]
    assert len(evac) == 4  # two keepers, 周奶奶's helper, the school's contact
    by_notice = {int(m.metadata["notice_id"]): m.body for m in evac}
    body = by_notice[tasks["H1"].notice_id]
    assert "您包保的2户4人" in body and "横湖村后山山洪危险区" in body
    # Vulnerable households are named first, as many as fit the SMS segments (sms_max_segments); the rest are
    # "等N户" behind the link.
    assert "李阿婆1人(含独居、老人)" in body and "等2户" in body
    assert f"/e/{token_for(runtime.settings, tasks['H1'].notice_id)}" in body
    assert "(西门村危旧房片区):陈家4人(含儿童),户主电话+8613700000003" in by_notice[tasks["H3"].notice_id]
    # The shelter's manager is told once, with the link to their own page.
    shelter_sms = [m for m in texts if m.metadata["kind"] == "evac_shelter"]
    assert (
        len(shelter_sms) == 1 and "太平街道中心小学避灾安置点" in shelter_sms[0].body and "/s/" in shelter_sms[0].body
    )
    special = [b for nid, b in by_notice.items() if nid not in ns]
    assert any("太平中心小学" in b and "停课" in b for b in special)
    assert any("周奶奶" in b and "独居老人" in b for b in special)
    assert not any("东辉养老院" in b for b in special)  # outside the warning's area
    assert await count(db, SpecialNotice, SpecialNotice.warning_id == wid) == 2


async def test_decisions_update_the_board_and_lift_keeps_evacuees_out_until_release(
    runtime, db, town, tree, client, duty, console
):
    wid = await issue(runtime, targets=[TOWN])
    tasks = await tasks_by_household(db, wid)
    page = f"/e/{token_for(runtime.settings, tasks['H1'].notice_id)}"
    r = await client.get(page)
    assert r.status_code == 200 and "王大伯" in r.text and "太平街道中心小学避灾安置点" in r.text
    assert "李阿婆" in r.text  # the keeper's page lists all their households
    h1, h2 = str(tasks["H1"].id), str(tasks["H2"].id)
    r = await client.post(
        page, data={"task_id": h1, "status": "moved", "shelter_id": str(town.shelter_id), "people_moved": "3"}
    )
    assert r.status_code == 303
    # A decision from the page also answers the notice (叫应).
    async with db.session() as s:
        assert (await s.get(Notice, tasks["H1"].notice_id)).state == "acknowledged"  # type: ignore[union-attr]
    # A task of another keeper cannot be decided through this page.
    r = await client.post(page, data={"task_id": str(tasks["H3"].id), "status": "moved"})
    assert r.status_code == 422 and (await tasks_by_household(db, wid))["H3"].status == "pending"
    r = await client.post(page, data={"task_id": h2, "status": "refused", "note": ""})
    assert r.status_code == 422 and "拒绝转移须填写情况说明" in r.text
    r = await client.post(page, data={"task_id": h2, "status": "refused", "note": "老人不愿离家,已报村委会强制转移"})
    assert r.status_code == 303
    r = await client.post(
        f"/api/v1/evacuation/tasks/{tasks['H3'].id}/decision", headers=duty, json={"status": "unreachable"}
    )
    assert r.status_code == 200, r.text
    b = await board(client, duty, wid)
    assert b["totals"] | {} == b["totals"]
    t = b["totals"]
    assert (t["households"], t["people"], t["moved"], t["people_moved"], t["refused"], t["not_moved"]) == (
        3,
        8,
        1,
        3,
        1,
        1,
    )
    assert [v["name"] for v in b["by_village"]] == ["西门村", "横湖村"]  # 4 people not moved first
    assert b["shelters"][0]["reported"] == 3 and b["shelters"][0]["capacity"] == 6
    r = await client.post(
        f"/api/v1/evacuation/shelters/{town.shelter_id}/arrivals",
        headers=duty,
        json={"task_id": tasks["H1"].id, "people": 3},
    )
    assert r.status_code == 200, r.text
    await sent_texts(runtime, console)

    await lift(runtime, wid)
    texts = await sent_texts(runtime, console)
    lifted = {
        int(m.metadata["notice_id"]): m.body
        for m in texts
        if m.metadata["kind"] == "cancel" and m.metadata["notice_id"]
    }
    assert "暂不返回" in lifted[tasks["H1"].notice_id] and "王大伯" in lifted[tasks["H1"].notice_id]
    lift_sms = [m for m in texts if m.metadata["kind"] == "cancel" and m.channel == "sms"]
    # One lift SMS per keeper, not one per household.
    assert sum(m.metadata["notice_id"] == str(tasks["H1"].notice_id) for m in lift_sms) == 1
    assert (await client.get(page)).status_code == 200  # the task page outlives the lift
    r = await client.post(page, data={"task_id": h1, "status": "returned"})
    assert r.status_code == 303
    b = await board(client, duty, wid)
    assert b["totals"]["returned_early"] == 1 and b["returned_early"][0]["household"] == "王大伯"
    csv_text = (await client.get(f"/api/v1/evacuation/warnings/{wid}/report.csv", headers=duty)).content.decode(
        "utf-8-sig"
    )
    rows = {r["户主"]: r for r in csv.DictReader(io.StringIO(csv_text))}
    assert rows["王大伯"]["提前返回"] == "是" and rows["李阿婆"]["转移状态"] == "拒绝转移"
    assert (await client.get(f"/api/v1/evacuation/warnings/{wid}/report.xlsx", headers=duty)).status_code == 200

    r = await client.post(
        f"/api/v1/evacuation/tasks/{tasks['H3'].id}/decision",
        headers=duty,
        json={"status": "moved", "shelter_id": town.shelter_id, "people_moved": 4},
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/v1/evacuation/warnings/{wid}/release", headers=duty, json={"region_code": TOWN})
    assert r.status_code == 200, r.text
    assert r.json()["tasks"] == 3
    texts = await sent_texts(runtime, console)
    released = [m for m in texts if m.metadata["kind"] == "evac_release"]
    # Each 包户责任人 and the shelter's manager once, though the warning was already lifted.
    assert sorted(m.address for m in released) == sorted({m.address for m in released}) and len(released) == 3
    assert all("解除转移" in m.body and "太平街道" in m.body for m in released)
    r = await client.post(page, data={"task_id": h1, "status": "returned"})
    assert (await tasks_by_household(db, wid))["H1"].released_at is not None
    again = await client.post(f"/api/v1/evacuation/warnings/{wid}/release", headers=duty, json={"region_code": TOWN})
    assert again.status_code == 409
    async with db.session() as s:
        actions = [
            e.action
            for e in (await s.execute(select(LedgerPending).where(LedgerPending.action.like("evacuation.%")))).scalars()
        ]
    assert (
        actions.count("evacuation.task_decided") == 6
    )  # the return after release is no early one and "evacuation.released" in actions
    assert (
        await count(db, OutboxMessage, OutboxMessage.kind == "evac_release", OutboxMessage.status == "cancelled") == 0
    )
    assert await count(db, EvacuationTask, EvacuationTask.returned_early.is_(True)) == 1


async def test_a_keeper_of_many_households_gets_one_sms_naming_a_few_and_linking_the_rest(
    runtime, db, town, client, duty, console
):
    lines = ["code,zone_code,name,people,phone,vulnerable,keeper"] + [
        f"H{10 + i},Z1,横湖村第{i}户,{2 + i % 3},,{'残疾' if i == 4 else ''},{town.people['henghu']}" for i in range(8)
    ]
    r = await client.post(
        "/api/v1/evacuation/registers/households/import",
        headers=duty,
        files={"file": ("more.csv", ("\n".join(lines) + "\n").encode())},
    )
    assert r.status_code == 200, r.text
    wid = await issue(runtime, targets=[TOWN])
    tasks = await tasks_by_household(db, wid)
    nid = tasks["H1"].notice_id
    assert len([t for t in tasks.values() if t.notice_id == nid]) == 10
    texts = await sent_texts(runtime, console)
    mine = [m for m in texts if m.metadata["kind"] == "evacuation" and m.metadata["notice_id"] == str(nid)]
    assert len(mine) == 1  # one SMS for ten households
    body = mine[0].body
    assert "您包保的10户" in body and "等10户" in body and f"/e/{token_for(runtime.settings, nid)}" in body
    assert "李阿婆" in body  # households with vulnerable members are named first
    # Named while that costs no extra segment (a text naming one household already takes three), the rest
    # behind the link.
    assert int(mine[0].metadata["segments"]) <= 3
    page = await client.get(f"/e/{token_for(runtime.settings, nid)}")
    assert page.text.count('class="card notice') >= 10  # the page lists them all
