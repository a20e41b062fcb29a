"""The Twilio adapter through the real `twilio` library against a local server speaking Twilio's REST API."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from channels.base import Message
from channels.twilio_common import TwilioAdapter, TwilioConfig
from tests.delivery.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, Fault

TEXT = "【温岭市防汛防台抗旱指挥部】温岭市发布台风红色预警,请立即到岗。回复 1 确认,或点击 http://ws.test/a/abc"


def adapter(fake: FakeTwilio, **overrides) -> TwilioAdapter:
    values = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from_number": "+15005550006",
              "api_base_url": fake.base_url, "public_base_url": "https://ws.example.cn", "timeout": 15.0}
    values.update(overrides)
    return TwilioAdapter(TwilioConfig(**values))


def sms(to: str = "+8613900000001", **kw) -> Message:
    return Message(channel="sms", address=to, body=TEXT, idempotency_key="n1:alert:r1:sms", **kw)


async def test_sms_request_carries_to_from_body_and_status_callback(fake_twilio: FakeTwilio) -> None:
    a = adapter(fake_twilio)
    try:
        result = await a.send(sms(status_callback="https://ws.example.cn/webhooks/twilio/status?o=7"))
    finally:
        await a.aclose()
    assert result.status == "sent" and result.provider_id and result.provider_id.startswith("SM")
    assert result.segments == 1
    [req] = fake_twilio.messages()
    assert req["form"] == {"To": "+8613900000001", "From": "+15005550006", "Body": TEXT,
                           "StatusCallback": "https://ws.example.cn/webhooks/twilio/status?o=7"}


async def test_messaging_service_replaces_the_from_number(fake_twilio: FakeTwilio) -> None:
    a = adapter(fake_twilio, from_number=None, messaging_service_sid="MG" + "1" * 32)
    try:
        result = await a.send(sms())
    finally:
        await a.aclose()
    assert result.status == "sent"
    [req] = fake_twilio.messages()
    assert req["form"]["MessagingServiceSid"] == "MG" + "1" * 32 and "From" not in req["form"]
    # without a callback on the message, the adapter's default under PUBLIC_BASE_URL is used
    assert req["form"]["StatusCallback"] == "https://ws.example.cn/webhooks/twilio/status"


async def test_voice_call_reads_the_warning_in_chinese_twice_and_gathers_one_key(fake_twilio: FakeTwilio
                                                                                 ) -> None:
    a = adapter(fake_twilio)
    msg = Message(channel="voice", address="+8613900000002", body="温岭市发布台风红色预警,请立即到岗。",
                  idempotency_key="n2:recall:r1:voice",
                  status_callback="https://ws.example.cn/webhooks/twilio/status?o=9",
                  gather_action="https://ws.example.cn/webhooks/twilio/voice/gather?t=tok")
    try:
        result = await a.send(msg)
    finally:
        await a.aclose()
    assert result.status == "sent" and result.provider_id.startswith("CA")
    [req] = fake_twilio.calls()
    form = req["form"]
    assert (form["To"], form["From"]) == ("+8613900000002", "+15005550006")
    assert form["StatusCallback"] == "https://ws.example.cn/webhooks/twilio/status?o=9"
    root = ET.fromstring(form["Twiml"])
    gather = root.find("Gather")
    assert gather is not None and gather.get("numDigits") == "1"
    assert gather.get("action") == "https://ws.example.cn/webhooks/twilio/voice/gather?t=tok"
    says = gather.findall("Say")
    assert all(s.get("language") == "zh-CN" for s in says)
    assert [s.text for s in says].count("温岭市发布台风红色预警,请立即到岗。") == 2


@pytest.mark.parametrize(("fault", "code", "retryable"), [
    (Fault(429, 20429, "Too Many Requests"), "twilio_20429", True),
    (Fault(500, None, "Internal Server Error"), "twilio_500", True),
    (Fault(503, None, "Service Unavailable"), "twilio_503", True),
    (Fault(400, 21614, "'To' number is not a valid mobile number"), "twilio_21614", False),
    (Fault(400, 21610, "Attempt to send to unsubscribed recipient"), "twilio_21610", False),
])
async def test_provider_errors_are_classified(fake_twilio: FakeTwilio, fault: Fault, code: str,
                                              retryable: bool) -> None:
    fake_twilio.fail_next(fault)
    a = adapter(fake_twilio)
    try:
        result = await a.send(sms())
    finally:
        await a.aclose()
    assert (result.status, result.error_code, result.retryable) == ("failed", code, retryable)


async def test_an_invalid_number_fails_permanently(fake_twilio: FakeTwilio) -> None:
    a = adapter(fake_twilio)
    try:
        result = await a.send(sms(to="12345"))
    finally:
        await a.aclose()
    assert (result.status, result.error_code, result.retryable) == ("failed", "twilio_21211", False)


async def test_a_hanging_provider_is_a_retryable_timeout(fake_twilio: FakeTwilio) -> None:
    fake_twilio.fail_next(Fault(hang=1.0))
    a = adapter(fake_twilio, timeout=0.3)
    try:
        result = await a.send(sms())
        again = await a.send(sms())
    finally:
        await a.aclose()
    assert (result.status, result.error_code, result.retryable) == ("failed", "timeout", True)
    assert again.status == "sent"  # the adapter's session survives a timeout


async def test_wrong_credentials_are_retried_not_dropped(fake_twilio: FakeTwilio) -> None:
    a = adapter(fake_twilio, auth_token="not-the-token")
    try:
        result = await a.send(sms())
    finally:
        await a.aclose()
    assert (result.error_code, result.retryable) == ("twilio_20003", True)


async def test_nobody_listening_is_a_retryable_network_error() -> None:
    a = TwilioAdapter(TwilioConfig(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number="+15005550006",
                                   api_base_url="http://127.0.0.1:9", timeout=2.0))
    try:
        result = await a.send(sms())
    finally:
        await a.aclose()
    assert (result.status, result.error_code, result.retryable) == ("failed", "network", True)
