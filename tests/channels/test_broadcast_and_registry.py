"""The loudspeaker stub, the fake adapter, and start-up refusing an adapter without its credentials."""

from __future__ import annotations

import pytest
from aiohttp import web

from channels.base import Message, sms_segments
from channels.broadcast import BroadcastStub
from channels.registry import build
from tests.conftest import make_settings
from warning_service.delivery.adapters import build_channels


def village_message(code: str = "331081001001") -> Message:
    return Message(channel="broadcast", address=code, body="横湖村村民请注意:台风红色预警,请立即转移。",
                   idempotency_key=f"b{code}:alert:r1:broadcast:w1")


async def test_stub_records_what_each_village_would_hear() -> None:
    stub = BroadcastStub()
    assert (await stub.send(village_message())).status == "sent"
    assert (await stub.send(village_message("331081001002"))).status == "sent"
    assert [p.text for p in stub.played["331081001001"]] == ["横湖村村民请注意:台风红色预警,请立即转移。"]
    assert set(stub.played) == {"331081001001", "331081001002"}


async def test_push_posts_json_to_the_broadcast_platform_and_classifies_its_answers() -> None:
    got: list[dict] = []
    answers = [web.json_response({"id": "play-1"}), web.Response(status=503), web.Response(status=422)]

    async def handler(request: web.Request) -> web.Response:
        got.append({"json": await request.json(), "key": request.headers.get("Idempotency-Key")})
        return answers.pop(0)

    app = web.Application()
    app.router.add_post("/play", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stub = BroadcastStub(push_url=f"http://127.0.0.1:{runner.addresses[0][1]}/play", timeout=2.0)
    try:
        ok = await stub.send(village_message())
        busy = await stub.send(village_message())
        bad = await stub.send(village_message())
    finally:
        await stub.aclose()
        await runner.cleanup()
    assert (ok.status, ok.provider_id) == ("sent", "play-1")
    assert (busy.error_code, busy.retryable) == ("http_503", True)
    assert (bad.error_code, bad.retryable) == ("http_422", False)
    assert got[0]["json"]["village"] == "331081001001" and "台风红色预警" in got[0]["json"]["text"]
    assert got[0]["key"] == "b331081001001:alert:r1:broadcast:w1"
    assert len(stub.played["331081001001"]) == 1  # only what the platform accepted


def test_sms_segments_count_chinese_as_ucs2() -> None:
    assert sms_segments("中" * 70) == 1
    assert sms_segments("中" * 71) == 2
    assert sms_segments("a" * 160) == 1
    assert sms_segments("a" * 161) == 2


@pytest.mark.parametrize(("env", "named"), [
    ({"channel_adapters": "sms=twilio"}, "TWILIO_ACCOUNT_SID"),
    ({"channel_adapters": "sms=twilio", "twilio_account_sid": "AC1"}, "TWILIO_AUTH_TOKEN"),
    ({"channel_adapters": "sms=twilio", "twilio_account_sid": "AC1", "twilio_auth_token": "t"},
     "TWILIO_FROM_NUMBER nor TWILIO_MESSAGING_SERVICE_SID"),
    ({"channel_adapters": "sms=twilio,voice=twilio", "twilio_account_sid": "AC1", "twilio_auth_token": "t",
      "twilio_messaging_service_sid": "MG1"}, "TWILIO_FROM_NUMBER"),
    ({"channel_adapters": "email=smtp"}, "SMTP_HOST"),
    ({"channel_adapters": "email=smtp", "smtp_host": "mail"}, "SMTP_FROM"),
    ({"channel_adapters": "sms=carrier-pigeon"}, "unknown adapter"),
    ({"channel_adapters": "email=twilio", "twilio_account_sid": "AC1", "twilio_auth_token": "t"},
     "serves sms and voice"),
    ({"channel_adapters": "sms"}, "CHANNEL_ADAPTERS"),
])
def test_an_adapter_without_its_settings_stops_start_up_naming_the_setting(db, env, named) -> None:
    with pytest.raises(SystemExit) as exc:
        build_channels(make_settings(db, **env))
    assert "configuration error" in str(exc.value) and named in str(exc.value)


async def test_complete_settings_build_one_adapter_per_name(db) -> None:
    settings = make_settings(db, channel_adapters="sms=twilio,voice=twilio,email=smtp,broadcast=stub",
                             twilio_account_sid="AC1", twilio_auth_token="t",
                             twilio_from_number="+15005550006", smtp_host="mail",
                             smtp_from="alerts@ws.example.cn")
    reg = build_channels(settings)
    try:
        assert reg.get("sms") is reg.get("voice") and reg.get("sms").name == "twilio"
        assert reg.get("email").name == "smtp" and reg.get("broadcast").name == "broadcast"
    finally:
        await reg.aclose()
    default = build({"sms": "console", "email": "console"}, {})
    assert default.get("sms") is default.get("email") and default.channels() == ["email", "sms"]
