"""The dry-run preview: the issue's exact count and texts, and nothing written; idempotent issue."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from tests.early_warning.conftest import red_typhoon
from warning_service.delivery.dispatcher import dispatch_once
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning.models import EarlyWarning, IssueRequest, WarningRevision
from warning_service.ledger.models import LedgerPending
from warning_service.notice.models import Notice

LINK = re.compile(r"(/a/)[A-Za-z0-9_-]+")


async def row_counts(db) -> dict[str, int]:
    async with db.session() as s:
        return {m.__tablename__: (await s.execute(select(func.count()).select_from(m))).scalar_one()
                for m in (EarlyWarning, WarningRevision, Notice, OutboxMessage, LedgerPending, IssueRequest)}


async def test_preview_count_and_sms_equal_what_the_issue_reaches_and_sends(client, duty, db, tree, runtime,
                                                                          console):
    body = red_typhoon(["331081001", "331081002001"])
    before = await row_counts(db)
    r = await client.post("/api/v1/warnings/preview", headers=duty, json=body)
    assert r.status_code == 200, r.text
    p = r.json()
    assert await row_counts(db) == before  # a dry run writes nothing
    assert p["recipient_count"] == 7 + 3  # town 001 (4 grids, 2 villages, 1 town) + village 002001 (2 grids, 1)
    assert {x["role"]: x["count"] for x in p["by_role"]} == {"grid_responsible": 6, "village_responsible": 3,
                                                            "town_responsible": 1}
    assert {x["name"]: x["count"] for x in p["by_town"]} == {"太平街道": 7, "城东街道": 3}
    texts = {t["channel"]: t for t in p["texts"]}
    assert set(texts) == {"sms", "voice", "email", "broadcast"}
    sms = texts["sms"]
    assert sms["chars"] == len(sms["body"]) and sms["segments"] >= 1 and "台风" in sms["body"]
    assert texts["email"]["subject"] and texts["broadcast"]["body"]

    issued = await client.post("/api/v1/warnings", headers=duty, json=body)
    assert issued.status_code == 201
    assert issued.json()["recipient_count"] == p["recipient_count"]
    await dispatch_once(runtime, batch_size=100)
    sample = p["sample_recipient"]
    async with db.session() as s:
        person_id = tree.person(sample["region_code"], sample["role"])
        notice_id = (await s.execute(select(Notice.id).where(Notice.person_id == person_id))).scalar_one()
    sent = [m for m in console.sent if m.channel == "sms" and m.metadata["notice_id"] == str(notice_id)]
    assert len(sent) == 1
    assert LINK.sub(r"\1x", sent[0].body) == LINK.sub(r"\1x", sms["body"])


async def test_preview_refuses_a_region_outside_the_scope_like_the_issue(client, duty, db, tree):
    r = await client.post("/api/v1/warnings/preview", headers=duty, json=red_typhoon(["331082"]))
    assert r.status_code == 403 and r.json()["detail"]["field"] == "targets"


async def test_same_idempotency_key_issues_once_and_answers_the_same_warning(client, duty, db, tree):
    headers = {**duty, "Idempotency-Key": "form-7f3a"}
    first = await client.post("/api/v1/warnings", headers=headers, json=red_typhoon(["331081001"]))
    again = await client.post("/api/v1/warnings", headers=headers, json=red_typhoon(["331081001"]))
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    assert (await row_counts(db))["early_warning"] == 1
    other = await client.post("/api/v1/warnings", headers=headers, json=red_typhoon(["331081002"]))
    assert other.status_code == 409 and other.json()["detail"]["field"] == "Idempotency-Key"
    assert (await row_counts(db))["early_warning"] == 1
