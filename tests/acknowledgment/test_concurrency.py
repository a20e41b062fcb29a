"""Fifty answers to one notice at once, through every door: one record, fifty successes."""

from __future__ import annotations

import asyncio
from xml.etree import ElementTree

from tests.acknowledgment.conftest import (
    acks,
    issue,
    ledger_actions,
    notice_of,
    phone_of,
    post_signed,
    reload,
    token_for,
)
from warning_service.notice.models import Notice

GRID = "33108100100101"


async def test_fifty_concurrent_requests_through_link_sms_key_and_proxy_record_one(
        client, settings, runtime, db, tree, duty):
    wid = await issue(runtime, targets=[GRID])
    n = await notice_of(db, wid, tree.person(GRID, "grid_responsible"))
    phone = await phone_of(db, n.person_id)
    token = token_for(settings, n.id)

    async def link(i: int) -> bool:
        r = await client.post(f"/a/{token}", json={})
        return r.status_code == 200 and r.json()["status"] in ("acknowledged", "already_acknowledged")

    async def sms(i: int) -> bool:
        r = await post_signed(client, settings, "/webhooks/twilio/sms",
                              {"From": phone, "Body": "收到", "MessageSid": f"SM{i:032d}"})
        text = "".join(m.text or "" for m in ElementTree.fromstring(r.text).iter("Message"))
        return r.status_code == 200 and ("已确认收到" in text or "此前已确认" in text)

    async def key(i: int) -> bool:
        r = await post_signed(client, settings, f"/webhooks/twilio/voice/gather?t={token}",
                              {"Digits": "1", "CallSid": f"CA{i:032d}", "Called": phone})
        return r.status_code == 200 and "已确认收到" in r.text

    async def proxy(i: int) -> bool:
        r = await client.post(f"/api/v1/notices/{n.id}/acknowledge", headers=duty,
                              json={"method": "phone", "note": f"call {i}"})
        return r.status_code == 200 and r.json()["status"] in ("acknowledged", "already_acknowledged")

    doors = [link, sms, key, proxy]
    results = await asyncio.gather(*(doors[i % 4](i) for i in range(50)))
    assert results == [True] * 50
    rows = await acks(db, n.id)
    assert len(rows) == 1
    assert len(await ledger_actions(db, "ack.recorded")) == 1
    fresh = await reload(db, Notice, n.id)
    assert fresh.state == "acknowledged" and fresh.acknowledged_at == rows[0].acknowledged_at
