"""The Aliyun voice adapter through the official dyvmsapi SDK against a local server that checks every
ACS3-HMAC-SHA256 signature; failover from Aliyun to Twilio voice; the settings that choose it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from channels.base import Message, TemplateFields
from channels.breaker import BreakerPolicy, Breakers
from channels.by_channel import ByChannel
from channels.failover import FailoverAdapter
from channels.sms_aliyun import AliyunSmsAdapter
from channels.templates import TemplateSet
from channels.twilio_common import TwilioAdapter, TwilioConfig
from channels.voice_aliyun import AliyunVoiceAdapter, AliyunVoiceConfig
from tests.conftest import make_settings
from tests.delivery.fake_aliyun import ACCESS_KEY_ID, ACCESS_KEY_SECRET, AliyunFault, FakeAliyun, start
from tests.delivery.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from warning_service.delivery.adapters import build_channels

SHOW_NUMBER = "057186000000"
TEMPLATES = "alert=TTS_300001:sender/20,area/20,hazard,level,deadline;cancel=TTS_300002:area,hazard"
REGISTERED = {"TTS_300001": {"sender", "area", "hazard", "level", "deadline"}, "TTS_300002": {"area", "hazard"},
              "TTS_300009": set(), "TTS_300010": set()}
CONFIRM, BYE = "TTS_300009", "TTS_300010"


@pytest.fixture
async def fake_aliyun() -> AsyncIterator[FakeAliyun]:
    fake = FakeAliyun(templates=REGISTERED, show_numbers={SHOW_NUMBER})
    runner = await start(fake)
    yield fake
    await runner.cleanup()


def voice_adapter(fake: FakeAliyun, *, secret: str = ACCESS_KEY_SECRET, timeout: float = 3.0,
                  endpoint: str | None = None) -> AliyunVoiceAdapter:
    return AliyunVoiceAdapter(AliyunVoiceConfig(
        access_key_id=ACCESS_KEY_ID, access_key_secret=secret, called_show_number=SHOW_NUMBER,
        templates=TemplateSet.parse(TEMPLATES, setting="ALIYUN_VOICE_TTS_TEMPLATES", default_max=20),
        confirm_code=CONFIRM, bye_code=BYE, endpoint=endpoint or fake.base_url, timeout=timeout))


def call(i: int = 1, *, kind: str = "alert", ask: bool = True, **fields: str) -> Message:
    values = {"sender": "温岭市防指", "area": "城东街道", "hazard": "台风", "level": "红色",
              "deadline": "07-21 18:30", **fields}
    return Message("voice", f"+86139{i:08d}", "温岭市发布台风红色预警,请立即到岗。确认收到请按1。", f"k{i}",
                   gather_action="https://ws.example.cn/webhooks/twilio/voice/gather?t=tok" if ask else None,
                   metadata={"kind": kind, "outbox_id": str(i)}, template=TemplateFields(**values))


async def test_a_call_asking_for_an_answer_is_an_ivr_call_with_key_1_bound_to_the_confirmation(fake_aliyun
                                                                                                ) -> None:
    r = await voice_adapter(fake_aliyun).send(call(7))
    [req] = fake_aliyun.calls()
    assert req["action"] == "IvrCall" and r.status == "sent" and r.provider_id == req["call_id"]
    assert (req["template"], req["menu"], req["bye"], req["out_id"]) == ("TTS_300001", {"1": CONFIRM}, BYE, "7")
    assert req["query"]["CalledShowNumber"] == SHOW_NUMBER and req["numbers"] == ["13900000007"]
    assert req["values"] == [{"sender": "温岭市防指", "area": "城东街道", "hazard": "台风", "level": "红色",
                              "deadline": "07-21 18:30"}]
    assert (req["play_times"], req["timeout"]) == ("2", "8000")


async def test_a_call_with_nothing_to_answer_is_a_single_tts_call(fake_aliyun) -> None:
    r = await voice_adapter(fake_aliyun).send(call(3, kind="cancel", ask=False))
    [req] = fake_aliyun.calls()
    assert (req["action"], req["template"], req["out_id"], r.provider_id) == ("SingleCallByTts", "TTS_300002", "3",
                                                                          req["call_id"])
    assert json.loads(req["query"]["TtsParam"]) == {"area": "城东街道", "hazard": "台风"}


async def test_a_wrong_secret_fails_the_servers_signature_check_and_no_call_is_placed(fake_aliyun) -> None:
    r = await voice_adapter(fake_aliyun, secret="not-the-secret").send(call())
    assert (r.status, r.error_code, r.not_sent) == ("failed", "aliyun_SignatureDoesNotMatch", True)
    assert fake_aliyun.calls() == []


async def test_variables_follow_the_length_rules_and_what_cannot_be_said_is_left_to_the_next_provider(
        fake_aliyun) -> None:
    adapter = voice_adapter(fake_aliyun)
    ok = await adapter.send(call(1, area="城东街道、城西街道、太平街道、横峰街道、大溪镇、泽国镇"))
    assert ok.status == "sent"
    [req] = fake_aliyun.calls()
    assert len(req["values"][0]["area"]) == 20 and req["values"][0]["area"].endswith("…")
    for bad, code in [(call(2, deadline="2024-07-21 18:30 北京时间"), "template_param_too_long"),
                      (call(3, kind="evacuation"), "no_template"),
                      (call(4, hazard=""), "template_param_empty"),
                      (Message("voice", "+15005550006", "x", "k5", template=call().template,
                               metadata={"kind": "alert"}), "not_mainland")]:
        r = await adapter.send(bad)
        assert (r.status, r.error_code, r.not_sent) == ("failed", code, True)
    assert len(fake_aliyun.calls()) == 1


async def test_a_timeout_after_the_request_left_is_returned_as_is_and_the_call_is_not_placed_twice(
        fake_aliyun) -> None:
    fake_aliyun.latency = lambda: 1.0
    r = await voice_adapter(fake_aliyun, timeout=0.3).send(call())
    assert (r.status, r.retryable, r.not_sent) == ("failed", True, False)
    assert [q["action"] for q in fake_aliyun.requests] == ["IvrCall"]


async def test_server_errors_and_refused_connections_are_certainly_not_placed(fake_aliyun) -> None:
    fake_aliyun.fail_next(AliyunFault(status=503), AliyunFault(status=200, code="isv.AMOUNT_NOT_ENOUGH"))
    adapter = voice_adapter(fake_aliyun)
    for _ in range(2):
        r = await adapter.send(call())
        assert r.status == "failed" and r.retryable and r.not_sent
    r = await voice_adapter(fake_aliyun, endpoint="http://127.0.0.1:9").send(call())
    assert (r.error_code, r.not_sent) == ("network_refused", True)


async def test_aliyun_answering_5xx_hands_every_call_to_twilio_voice_none_doubled(fake_aliyun,
                                                                                   fake_twilio: FakeTwilio) -> None:
    fake_aliyun.fail_next(*[AliyunFault(status=500)] * 100)
    twilio = TwilioAdapter(TwilioConfig(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number="+15005550006",
                                        api_base_url=fake_twilio.base_url, timeout=5.0))
    failover = FailoverAdapter([("aliyun", voice_adapter(fake_aliyun)), ("twilio", twilio)],
                               breakers=Breakers(BreakerPolicy(min_calls=1000)))
    try:
        results = [await failover.send(call(i)) for i in range(5)]
    finally:
        await twilio.aclose()
    assert [(r.status, r.provider) for r in results] == [("sent", "twilio")] * 5
    placed = fake_twilio.calls()
    assert sorted(c["form"]["To"] for c in placed) == [f"+86139{i:08d}" for i in range(5)]
    assert all("<Gather" in c["form"]["Twiml"] for c in placed)
    assert fake_aliyun.calls() == [] and len(fake_aliyun.requests) == 5


# --- settings ---------------------------------------------------------------------------------------------

VOICE_SETTINGS = {"aliyun_access_key_id": ACCESS_KEY_ID, "aliyun_access_key_secret": ACCESS_KEY_SECRET,
                  "aliyun_voice_called_show_number": SHOW_NUMBER, "aliyun_voice_tts_templates": TEMPLATES,
                  "aliyun_voice_confirm_tts_code": CONFIRM}


@pytest.mark.parametrize("missing", ["aliyun_access_key_secret", "aliyun_voice_called_show_number",
                                     "aliyun_voice_tts_templates", "aliyun_voice_confirm_tts_code"])
def test_voice_aliyun_without_a_setting_stops_start_up_naming_it(db, missing) -> None:
    values = {k: v for k, v in VOICE_SETTINGS.items() if k != missing}
    with pytest.raises(SystemExit, match=missing.upper()):
        build_channels(make_settings(db, channel_adapters="voice=aliyun,twilio", **values))


async def test_one_aliyun_name_serves_sms_and_voice_each_through_its_own_api(db) -> None:
    s = make_settings(db, channel_adapters="sms=aliyun,voice=aliyun", aliyun_sms_sign_name="浙江防汛",
                      aliyun_sms_templates="alert=SMS_1:area", **VOICE_SETTINGS)
    registry = build_channels(s)
    try:
        gate = registry.get("voice")
        assert registry.get("sms") is gate  # one provider, one gate (its rate limit and figures)
        adapter = gate.inner  # type: ignore[attr-defined]
        assert isinstance(adapter, ByChannel)
        assert isinstance(adapter.adapters["sms"], AliyunSmsAdapter)
        assert isinstance(adapter.adapters["voice"], AliyunVoiceAdapter)
        r = await adapter.send(Message("email", "a@b.cn", "x", "k"))
        assert r.error_code == "unsupported_channel"
    finally:
        await registry.aclose()
