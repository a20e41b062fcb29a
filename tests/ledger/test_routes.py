from __future__ import annotations

from datetime import timedelta

from tests.factories import login
from tests.ledger.conftest import append_and_seal, tamper
from warning_service.ledger import service as ledger
from warning_service.ledger.jobs import seal_tick


async def test_auditor_verifies_the_chain_and_sees_the_broken_entry(client, db, clock, users, runtime):
    await append_and_seal(db, start=clock.now(), n=6)
    await seal_tick(runtime)  # the users created by the fixture were recorded too
    h = await login(client, "wl_audit")
    r = await client.get("/api/v1/audit/verify", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["checked"] == body["head_id"] >= 6
    await tamper(db, "UPDATE ledger SET details = '{}' WHERE id = 4")
    body = (await client.get("/api/v1/audit/verify", headers=h)).json()
    assert body["ok"] is False and body["first_broken_id"] == 4 and body["reason_zh"]


async def test_verify_with_a_head_written_down_earlier(client, db, clock, users):
    await append_and_seal(db, start=clock.now(), n=3)
    h = await login(client, "wl_audit")
    head = (await client.get("/api/v1/audit/verify", headers=h)).json()
    r = await client.get("/api/v1/audit/verify", headers=h,
                         params={"known_id": head["head_id"], "known_hash": head["head_hash"]})
    assert r.json()["ok"] is True
    r = await client.get("/api/v1/audit/verify", headers=h,
                         params={"known_id": head["head_id"], "known_hash": "0" * 64})
    assert r.json()["ok"] is False and r.json()["first_broken_id"] == head["head_id"]
    r = await client.get("/api/v1/audit/verify", headers=h, params={"known_id": 3})
    assert r.status_code == 422 and r.json()["detail"]["field"] == "known_hash"


async def test_auditor_lists_and_filters_the_ledger_newest_first(client, db, clock, users):
    t0 = clock.now()
    await append_and_seal(db, start=t0, n=5, action="warning.issued", actor="user:duty1")
    await append_and_seal(db, start=t0 + timedelta(hours=1), n=3, action="ack.recorded",
                          actor="person:+86139")
    h = await login(client, "zj_audit")
    r = await client.get("/api/v1/audit/ledger", headers=h, params={"limit": 4})
    assert r.status_code == 200, r.text
    page = r.json()
    ids = [e["id"] for e in page["items"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 4 and page["next_before"] == ids[-1]
    rest = (await client.get("/api/v1/audit/ledger", headers=h,
                             params={"before": page["next_before"], "limit": 1000})).json()
    assert rest["next_before"] is None and max(e["id"] for e in rest["items"]) < ids[-1]
    acks = (await client.get("/api/v1/audit/ledger", headers=h, params={"action": "ack.*"})).json()["items"]
    assert len(acks) == 3 and {e["actor"] for e in acks} == {"person:+86139"}
    by_actor = (await client.get("/api/v1/audit/ledger", headers=h, params={"actor": "user:duty1"})).json()
    assert len(by_actor["items"]) == 5
    # 08:00 UTC is 16:00 in Beijing: a window from 16:30 Beijing time holds only the later entries.
    later = (await client.get("/api/v1/audit/ledger", headers=h, params={
        "from": "2026-07-01T16:30", "action": "*"})).json()["items"]
    assert {e["action"] for e in later} == {"ack.recorded"}
    one = (await client.get(f"/api/v1/audit/ledger/{acks[0]['id']}", headers=h)).json()
    assert one["hash"] == acks[0]["hash"] and one["details"]["名称"] == "台风红色预警"


async def test_bad_ledger_filters_are_422_with_the_field(client, db, users):
    h = await login(client, "wl_audit")
    r = await client.get("/api/v1/audit/ledger", headers=h, params={"from": "yesterday"})
    assert r.status_code == 422 and r.json()["detail"]["field"] == "from" and r.json()["detail"]["message_zh"]
    r = await client.get("/api/v1/audit/ledger", headers=h, params={"from": "2026-07-02", "to": "2026-07-01"})
    assert r.status_code == 422 and r.json()["detail"]["field"] == "from"
    r = await client.get("/api/v1/audit/ledger", headers=h, params={"limit": 0})
    assert r.status_code == 422 and r.json()["detail"]["field"] == "limit"


async def test_county_auditor_sees_only_entries_about_the_county(client, db, clock, users, runtime):
    inside = users.person("331081001001", "village_responsible")
    outside = users.person("331082001001", "village_responsible")
    async with db.session() as s:
        for pid in (inside, outside):
            await ledger.append(s, at=clock.now(), actor="user:x", action="person.updated",
                                subject_type="person", subject_id=pid, details={})
        await ledger.append(s, at=clock.now(), actor="system:policy", action="policy.loaded",
                            subject_type="policy", subject_id="default", details={})
    await seal_tick(runtime)
    county = await login(client, "wl_audit")
    seen = (await client.get("/api/v1/audit/ledger", headers=county, params={"limit": 1000})).json()["items"]
    people = {e["subject_id"] for e in seen if e["subject_type"] == "person"}
    assert people == {str(inside)}
    assert any(e["action"] == "policy.loaded" for e in seen)
    outside_entry = next(e for e in (await client.get("/api/v1/audit/ledger", headers=await login(
        client, "zj_audit"), params={"subject_id": str(outside)})).json()["items"])
    r = await client.get(f"/api/v1/audit/ledger/{outside_entry['id']}", headers=county)
    assert r.status_code == 404


async def test_duty_officer_can_neither_read_nor_alter_the_ledger(client, db, clock, users):
    await append_and_seal(db, start=clock.now(), n=2)
    duty = await login(client, "wl_duty")
    for path in ("/api/v1/audit/ledger", "/api/v1/audit/ledger/1", "/api/v1/audit/verify"):
        r = await client.get(path, headers=duty)
        assert r.status_code == 403, path
        assert r.json()["detail"]["message_zh"]
    auditor = await login(client, "wl_audit")
    for h in (duty, auditor):
        for method, path in (("POST", "/api/v1/audit/ledger"), ("PATCH", "/api/v1/audit/ledger/1"),
                             ("PUT", "/api/v1/audit/ledger/1"), ("DELETE", "/api/v1/audit/ledger/1"),
                             ("DELETE", "/api/v1/audit/ledger")):
            r = await client.request(method, path, headers=h, json={"actor": "user:forger"})
            assert r.status_code == 405, (method, path)
    body = (await client.get("/api/v1/audit/verify", headers=auditor)).json()
    assert body["ok"] is True
