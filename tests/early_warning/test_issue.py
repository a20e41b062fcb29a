from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from tests.early_warning.conftest import red_typhoon
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning.models import EarlyWarning
from warning_service.ledger.models import LedgerPending
from warning_service.notice.models import Notice


async def notices(db, warning_id):
    async with db.session() as s:
        return (await s.execute(select(Notice).where(Notice.warning_id == warning_id).order_by(Notice.id))
                ).scalars().all()


async def count(db, model, *where):
    async with db.session() as s:
        return (await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


@pytest.mark.parametrize(("target", "expected_roles"), [
    # red reaches grid, village and town responsible persons (not county)
    ("331081", {"grid_responsible": 6, "village_responsible": 3, "town_responsible": 2}),
    ("331081001", {"grid_responsible": 4, "village_responsible": 2, "town_responsible": 1}),
    ("331081001001", {"grid_responsible": 2, "village_responsible": 1}),
    ("33108100100101", {"grid_responsible": 1}),
])
async def test_red_warning_reaches_exactly_the_persons_under_the_target(
        client, duty, db, tree, target, expected_roles):
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon([target]))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["recipient_count"] == sum(expected_roles.values())
    got = await notices(db, body["id"])
    roles: dict[str, int] = {}
    for n in got:
        roles[n.role] = roles.get(n.role, 0) + 1
        assert n.region_code.startswith(target)
        assert n.state == "pending" and n.requires_ack and n.deadline is not None
        assert n.next_action_at == n.deadline
    assert roles == expected_roles


async def test_blue_warning_reaches_villages_only_and_asks_no_answer(client, duty, db, tree):
    r = await client.post("/api/v1/warnings", headers=duty, json={
        "hazard": "rainstorm", "level": "blue", "description": "未来6小时降雨量将达50毫米以上。",
        "targets": ["331081"]})
    got = await notices(db, r.json()["id"])
    assert {n.role for n in got} == {"village_responsible"} and len(got) == 3
    assert all(not n.requires_ack and n.next_action_at is None for n in got)


async def test_overlapping_targets_give_one_notice_per_person(client, duty, db, tree):
    r = await client.post("/api/v1/warnings", headers=duty,
                          json=red_typhoon(["331081", "331081001", "331081001001", "33108100100101"]))
    assert r.json()["recipient_count"] == 11
    got = await notices(db, r.json()["id"])
    assert len({n.person_id for n in got}) == len(got) == 11


async def test_first_messages_are_queued_with_the_notices(client, duty, db, tree):
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001"]))
    wid = r.json()["id"]
    # red policy: sms + email to everyone (all have both) and the loudspeaker of each village
    assert await count(db, OutboxMessage, OutboxMessage.warning_id == wid, OutboxMessage.channel == "sms") == 7
    assert await count(db, OutboxMessage, OutboxMessage.warning_id == wid, OutboxMessage.channel == "email") == 7
    assert await count(db, OutboxMessage, OutboxMessage.warning_id == wid, OutboxMessage.channel == "broadcast") == 2
    async with db.session() as s:
        rows = (await s.execute(select(OutboxMessage).where(OutboxMessage.warning_id == wid))).scalars().all()
    assert all(m.status == "queued" and m.priority == 4 and m.kind == "alert" for m in rows)
    assert len({m.idempotency_key for m in rows}) == len(rows)


async def test_identifier_follows_gbt_35965(client, duty, db, tree):
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081"]))
    assert re.fullmatch(r"331081\d{3}\d{3}\d{2}_\d{14}_1", r.json()["identifier"])
    r2 = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081"]))
    assert r2.json()["identifier"].endswith("_2")


async def test_targets_outside_scope_are_refused_and_nothing_is_written(client, duty, db, tree):
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081", "331082"]))
    assert r.status_code == 403
    assert r.json()["detail"]["field"] == "targets" and r.json()["detail"]["message_zh"]
    assert await count(db, EarlyWarning) == 0 and await count(db, Notice) == 0


async def test_bad_input_gets_field_and_reason(client, duty, db, tree):
    r = await client.post("/api/v1/warnings", headers=duty, json={**red_typhoon(["331081"]), "hazard": "meteor"})
    assert r.status_code == 422 and r.json()["detail"]["field"] == "hazard"
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["999999"]))
    assert r.status_code == 422 and r.json()["detail"]["field"] == "targets"
    assert await count(db, EarlyWarning) == 0


async def test_auditor_cannot_issue(client, tree):
    from tests.factories import login

    h = await login(client, "wl_audit")
    r = await client.post("/api/v1/warnings", headers=h, json=red_typhoon(["331081"]))
    assert r.status_code == 403


async def test_a_failure_mid_issue_leaves_nothing_behind(client, duty, db, tree, monkeypatch):
    from warning_service.early_warning import fanout

    async def boom(*a, **k):
        raise RuntimeError("database went away mid-issue")

    monkeypatch.setattr(fanout, "queue_broadcasts", boom)
    with pytest.raises(RuntimeError):
        await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081"]))
    for model in (EarlyWarning, Notice, OutboxMessage, LedgerPending):
        assert await count(db, model) == 0


async def test_inactive_people_are_not_reached(client, duty, db, tree):
    from warning_service.person.models import Person

    async with db.session() as s:
        p = await s.get(Person, tree.person("33108100100101", "grid_responsible"))
        p.active = False
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["33108100100101"]))
    assert r.json()["recipient_count"] == 0
