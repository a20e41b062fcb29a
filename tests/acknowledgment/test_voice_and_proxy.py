"""Key press in the warning call, and acknowledgment recorded by a duty officer on someone's behalf."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import pytest
from sqlalchemy import select

from tests.acknowledgment.conftest import (
    acks,
    issue,
    ledger_actions,
    lift,
    notice_of,
    phone_of,
    post_signed,
    reload,
    token_for,
)
from tests.factories import login
from warning_service.acknowledgment.models import Acknowledgment
from warning_service.auth.models import User
from warning_service.notice.models import Notice

GRID = "33108100100101"


@pytest.fixture
async def grid_notice(runtime, db, tree):
    wid = await issue(runtime, targets=[GRID])
    return await notice_of(db, wid, tree.person(GRID, "grid_responsible"))


async def press(client, settings, token: str, digits: str, phone: str, repeat: str = ""):
    path = f"/webhooks/twilio/voice/gather?t={token}" + (f"&r={repeat}" if repeat else "")
    form = {"CallSid": "CA" + "1" * 32, "Digits": digits, "Called": phone, "To": phone,
            "From": "+15005550006", "Direction": "outbound-api"}
    r = await post_signed(client, settings, path, form)
    assert r.status_code == 200, r.text
    return ElementTree.fromstring(r.text)


def says(root) -> str:
    return "".join(e.text or "" for e in root.iter("Say"))


async def test_key_1_acknowledges_and_confirms_in_chinese(client, settings, db, grid_notice):
    phone = await phone_of(db, grid_notice.person_id)
    root = await press(client, settings, token_for(settings, grid_notice.id), "1", phone)
    assert "已确认收到" in says(root) and root.find("Hangup") is not None
    assert all(s.get("language") == "zh-CN" for s in root.iter("Say"))
    rows = await acks(db, grid_notice.id)
    assert [(a.path, a.raw_input, a.source) for a in rows] == [("voice_key", "1", phone)]
    # pressing again later in the call is still "confirmed"
    again = await press(client, settings, token_for(settings, grid_notice.id), "1", phone)
    assert "已确认收到" in says(again) and len(await acks(db)) == 1


async def test_another_key_repeats_the_prompt_once_then_says_goodbye(client, settings, db, grid_notice):
    phone = await phone_of(db, grid_notice.person_id)
    token = token_for(settings, grid_notice.id)
    root = await press(client, settings, token, "9", phone)
    gather = root.find("Gather")
    assert gather is not None and "台风红色预警" in says(gather) and "按1" in says(gather)
    action = urlsplit(gather.get("action"))
    assert action.path == "/webhooks/twilio/voice/gather"
    assert parse_qs(action.query) == {"t": [token], "r": ["1"]}
    # the repeated prompt's own key press: 1 still acknowledges
    second = await press(client, settings, token, "*", phone, repeat="1")
    assert second.find("Gather") is None and "再次联系" in says(second)
    assert await acks(db) == []
    ok = await press(client, settings, token, "1", phone, repeat="1")
    assert "已确认收到" in says(ok) and len(await acks(db)) == 1


async def test_key_press_for_a_lifted_warning_says_so(client, settings, runtime, db, grid_notice):
    await lift(runtime, grid_notice.warning_id)
    root = await press(client, settings, token_for(settings, grid_notice.id), "1", "+8613900000001")
    assert "已解除" in says(root) and await acks(db) == []


async def test_forged_token_in_a_signed_call_changes_nothing(client, settings, db, grid_notice):
    root = await press(client, settings, "forged-token", "1", "+8613900000001")
    assert "无法识别" in says(root) and await acks(db) == []


@pytest.mark.parametrize("signed", [False, True])
async def test_unsigned_or_forged_key_press_is_refused(client, settings, db, grid_notice, signed):
    path = f"/webhooks/twilio/voice/gather?t={token_for(settings, grid_notice.id)}"
    form = {"Digits": "1", "CallSid": "CA1"}
    r = await post_signed(client, settings, path, form, signed=signed, sign_with="wrong-token")
    assert r.status_code == 403 and await acks(db) == []


# --- proxy ---------------------------------------------------------------------------------------

async def test_duty_officer_records_an_answer_obtained_by_phone(client, duty, db, grid_notice, clock):
    r = await client.post(f"/api/v1/notices/{grid_notice.id}/acknowledge", headers=duty,
                          json={"method": "phone", "note": "19:05 电话联系本人,已到岗"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "acknowledged" and r.json()["path"] == "proxy"
    async with db.session() as s:
        user = (await s.execute(select(User).where(User.username == "wl_duty"))).scalar_one()
        a = (await s.execute(select(Acknowledgment))).scalar_one()
    assert (a.path, a.proxy_method, a.actor_user_id) == ("proxy", "phone", user.id)
    assert a.note == "19:05 电话联系本人,已到岗"
    assert (await reload(db, Notice, grid_notice.id)).state == "acknowledged"
    # the person answering afterwards is told it is done; the proxy stays the record
    again = await client.post(f"/api/v1/notices/{grid_notice.id}/acknowledge", headers=duty,
                              json={"method": "visit", "note": "上门确认"})
    assert again.json()["status"] == "already_acknowledged" and again.json()["path"] == "proxy"
    listed = await client.get(f"/api/v1/notices/{grid_notice.id}/acknowledgments", headers=duty)
    assert [i["path"] for i in listed.json()["items"]] == ["proxy"]
    [entry] = await ledger_actions(db, "ack.recorded")
    assert entry.actor == "user:wl_duty"
    assert {k: entry.details[k] for k in ("path", "proxy_method", "note", "actor_user_id")} == {
        "path": "proxy", "proxy_method": "phone", "note": "19:05 电话联系本人,已到岗", "actor_user_id": user.id}


async def test_proxy_feedback_after_the_answer(client, duty, db, grid_notice):
    await client.post(f"/api/v1/notices/{grid_notice.id}/acknowledge", headers=duty,
                      json={"method": "visit", "note": "上门确认"})
    r = await client.post(f"/api/v1/notices/{grid_notice.id}/feedback", headers=duty,
                          json={"at_post": True, "people_evacuated": 12})
    assert r.status_code == 200 and r.json()["feedback"]["people_evacuated"] == 12


async def test_a_notice_outside_the_officers_scope_looks_absent(client, tree, db, grid_notice):
    other = await login(client, "lh_duty")  # 临海市, not 温岭市
    r = await client.post(f"/api/v1/notices/{grid_notice.id}/acknowledge", headers=other,
                          json={"method": "phone", "note": "电话确认"})
    missing = await client.post("/api/v1/notices/999999/acknowledge", headers=other,
                                json={"method": "phone", "note": "电话确认"})
    assert r.status_code == missing.status_code == 404 and r.json() == {
        **missing.json(), "detail": {**missing.json()["detail"],
                                     "message": f"notice {grid_notice.id} not found",
                                     "message_zh": f"通知 {grid_notice.id} 不存在"}}
    assert await acks(db) == []
    for path in ("attempts", "acknowledgments"):
        assert (await client.get(f"/api/v1/notices/{grid_notice.id}/{path}", headers=other)).status_code == 404


async def test_auditor_cannot_acknowledge_on_someones_behalf(client, tree, db, grid_notice):
    auditor = await login(client, "wl_audit")
    r = await client.post(f"/api/v1/notices/{grid_notice.id}/acknowledge", headers=auditor,
                          json={"method": "phone", "note": "电话确认"})
    assert r.status_code == 403 and await acks(db) == []


@pytest.mark.parametrize("body", [{"method": "pigeon", "note": "x"}, {"method": "other"},
                                  {"method": "other", "note": " "}, {"method": "phone"},
                                  {"method": "visit", "note": ""},
                                  {"method": "loudspeaker", "note": " \n "}, {}])
async def test_proxy_needs_a_known_method_and_a_note_whatever_the_method(client, duty, db, grid_notice, body):
    r = await client.post(f"/api/v1/notices/{grid_notice.id}/acknowledge", headers=duty, json=body)
    assert r.status_code == 422 and await acks(db) == []
    if "method" in body and body["method"] != "pigeon":
        assert r.json()["detail"]["field"] == "note"


async def test_proxy_for_a_lifted_warning_is_a_conflict_and_unknown_notice_404(client, duty, runtime, db,
                                                                               grid_notice):
    await lift(runtime, grid_notice.warning_id)
    r = await client.post(f"/api/v1/notices/{grid_notice.id}/acknowledge", headers=duty,
                          json={"method": "phone", "note": "电话确认"})
    assert r.status_code == 409 and r.json()["detail"]["code"] == "not_acknowledgeable"
    r = await client.post("/api/v1/notices/999999/acknowledge", headers=duty,
                          json={"method": "phone", "note": "电话确认"})
    assert r.status_code == 404
