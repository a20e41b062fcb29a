"""叫应 by an Aliyun interactive call: the escalation's re-call goes out as an IvrCall through the official SDK
(signatures checked by the local server); Aliyun's VoiceCallReport / VoiceReport pushes come back with the
digits pressed and the call's end, into the key-press acknowledgment and the receipt path."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from channels.fake import FakeAdapter
from channels.templates import TemplateSet
from channels.voice_aliyun import AliyunVoiceAdapter, AliyunVoiceConfig
from tests.acknowledgment.conftest import acks, issue, lift, notice_of, phone_of, reload
from tests.conftest import make_settings
from tests.delivery.conftest import outbox, use
from tests.delivery.fake_aliyun import ACCESS_KEY_ID, ACCESS_KEY_SECRET, FakeAliyun, start
from warning_service.delivery.dispatcher import dispatch_tick
from warning_service.escalation.service import escalation_tick
from warning_service.notice.models import Notice

GRID = "33108100100101"
PUSH_TOKEN = "voice-push-token-0123456789abcdefghij"
SHOW_NUMBER = "057186000000"
TEMPLATES = "recall=TTS_400001:sender/20,area/20,hazard,level;default=TTS_400002:area/20,hazard,level"
CONFIRM = "TTS_400009"


@pytest.fixture
def settings(db):
    return make_settings(db, aliyun_push_token=PUSH_TOKEN)


@pytest.fixture
async def fake_aliyun() -> AsyncIterator[FakeAliyun]:
    fake = FakeAliyun(templates={"TTS_400001": {"sender", "area", "hazard", "level"},
                                 "TTS_400002": {"area", "hazard", "level"}, CONFIRM: set()},
                      show_numbers={SHOW_NUMBER})
    runner = await start(fake)
    yield fake
    await runner.cleanup()


@pytest.fixture
async def recall(runtime, db, tree, clock, fake_aliyun):
    """A red warning to a grid; nobody answers the SMS, so at the deadline the escalation re-calls by voice,
    through Aliyun. Returns the notice and its voice message."""
    use(runtime, AliyunVoiceAdapter(AliyunVoiceConfig(
        access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET, called_show_number=SHOW_NUMBER,
        templates=TemplateSet.parse(TEMPLATES, setting="ALIYUN_VOICE_TTS_TEMPLATES", default_max=20),
        confirm_code=CONFIRM, endpoint=fake_aliyun.base_url, timeout=5.0)), ("voice",))
    use(runtime, FakeAdapter(delivered=False), ("sms", "email", "broadcast"))
    wid = await issue(runtime, targets=[GRID])
    notice = await notice_of(db, wid, tree.person(GRID, "grid_responsible"))
    await dispatch_tick(runtime)
    clock.advance(181)
    await escalation_tick(runtime)
    await dispatch_tick(runtime)
    [call] = await outbox(db, notice_id=notice.id, channel="voice")
    return notice, call


async def push(client, items: list[dict], token: str | None = PUSH_TOKEN):
    url = "/webhooks/aliyun/voice/report" + (f"?token={token}" if token is not None else "")
    return await client.post(url, content=json.dumps(items, ensure_ascii=False),
                             headers={"content-type": "application/json"})


def key_pressed(call, digits: str) -> dict:
    """VoiceCallReport at the key press (status 300000)."""
    return {"call_id": call.provider_id, "status_code": "300000", "smart_status_code": "ANSWERED", "dtmf": digits,
            "status_time": "2026-07-01 16:03:12", "out_id": str(call.id)}


def call_ended(call, status_code: str, digits: str | None = None) -> dict:
    """VoiceReport at the end of the call."""
    return {"call_id": call.provider_id, "start_time": "2026-07-01 16:03:01", "end_time": "2026-07-01 16:03:40",
            "duration": "39", "status_code": status_code, "status_msg": "", "out_id": str(call.id),
            "dtmf": digits, "callee": call.address.removeprefix("+86"), "caller": SHOW_NUMBER}


async def voice_calls(db, notice_id: int) -> list:
    return await outbox(db, notice_id=notice_id, channel="voice")


async def test_the_re_call_is_an_ivr_call_whose_key_1_plays_the_confirmation(db, recall, fake_aliyun) -> None:
    notice, call = recall
    [req] = fake_aliyun.calls()
    assert (req["action"], req["template"], req["menu"], req["out_id"]) == ("IvrCall", "TTS_400001",
                                                                            {"1": CONFIRM}, str(call.id))
    assert req["numbers"] == [call.address.removeprefix("+86")] and call.address == await phone_of(db, notice.person_id)
    assert req["values"][0]["hazard"] == "台风" and req["values"][0]["level"] == "红色"
    assert (call.status, call.provider_id) == ("sent", req["call_id"])


async def test_key_1_acknowledges_the_notice_exactly_once_however_often_aliyun_pushes(client, db, recall
                                                                                       ) -> None:
    notice, call = recall
    for _ in range(2):  # Aliyun pushes again when it missed our answer
        r = await push(client, [key_pressed(call, "1")])
        assert r.status_code == 200 and r.json() == {"code": 0, "msg": "成功"}
    # the end of the same call carries the digits again
    assert (await push(client, [call_ended(call, "200000", "1")])).status_code == 200
    phone = await phone_of(db, notice.person_id)
    assert [(a.path, a.raw_input, a.source) for a in await acks(db, notice.id)] == [("voice_key", "1", phone)]
    assert (await reload(db, Notice, notice.id)).state == "acknowledged"
    [call] = await voice_calls(db, notice.id)
    assert call.status == "delivered"


async def test_a_replayed_key_press_does_not_answer_the_notice_again_after_it_was_reopened(
        client, db, recall) -> None:
    notice, call = recall
    assert (await push(client, [key_pressed(call, "1")])).status_code == 200
    async with db.session() as s:  # an upgrade asks everyone again
        (await s.get(Notice, notice.id)).state = "pending"  # type: ignore[union-attr]
    assert (await push(client, [key_pressed(call, "1")])).status_code == 200
    assert len(await acks(db, notice.id)) == 1
    assert (await reload(db, Notice, notice.id)).state == "pending"


async def test_another_key_leaves_the_notice_open(client, db, recall) -> None:
    notice, call = recall
    r = await push(client, [key_pressed(call, "9"), call_ended(call, "200000", "9")])
    assert r.status_code == 200
    assert await acks(db, notice.id) == []
    assert (await reload(db, Notice, notice.id)).state == "delivered"  # heard, not answered


async def test_an_unanswered_call_is_recorded_undelivered_and_the_escalation_calls_again(
        client, db, runtime, clock, recall, fake_aliyun) -> None:
    notice, call = recall
    assert (await push(client, [call_ended(call, "200003")])).status_code == 200
    [call] = await voice_calls(db, notice.id)
    assert (call.status, call.error_code) == ("undelivered", "aliyun_voice_200003")
    assert (await reload(db, Notice, notice.id)).state == "pending" and await acks(db) == []
    clock.advance(181)
    await escalation_tick(runtime)
    await dispatch_tick(runtime)
    calls = await voice_calls(db, notice.id)
    assert [c.kind for c in calls] == ["recall", "recall"] and calls[1].status == "sent"
    assert [r["action"] for r in fake_aliyun.calls()] == ["IvrCall", "IvrCall"]


async def test_a_key_press_after_the_warning_was_lifted_acknowledges_nothing(client, db, runtime, recall) -> None:
    notice, call = recall
    await lift(runtime, notice.warning_id)
    assert (await push(client, [key_pressed(call, "1")])).status_code == 200
    assert await acks(db, notice.id) == []


async def test_a_key_press_for_an_unknown_call_changes_nothing(client, db, recall) -> None:
    notice, call = recall
    forged = {**key_pressed(call, "1"), "call_id": "999^999", "out_id": "999999"}
    assert (await push(client, [forged])).status_code == 200
    assert await acks(db) == []


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
async def test_a_push_without_the_token_is_refused_and_changes_nothing(client, db, recall, token) -> None:
    notice, call = recall
    r = await push(client, [key_pressed(call, "1"), call_ended(call, "200000", "1")], token=token)
    assert r.status_code == 403
    assert await acks(db) == [] and (await voice_calls(db, notice.id))[0].status == "sent"


async def test_a_malformed_item_refuses_the_whole_push(client, db, recall) -> None:
    notice, call = recall
    r = await push(client, [key_pressed(call, "1"), {"call_id": call.provider_id}])
    assert r.status_code == 422 and r.json()["detail"]["field"] == "1.status_code"
    assert await acks(db) == []
