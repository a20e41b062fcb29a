"""Tencent Cloud SMS: the real adapter and the official SDK against a local Tencent-speaking server that checks
every TC3-HMAC-SHA256 signature; what goes out per call, how every answer is classified, failover into Tencent."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from channels.base import Message, SendResult, TemplateFields
from channels.breaker import BreakerPolicy, Breakers
from channels.failover import FailoverAdapter
from channels.fake import FakeAdapter
from channels.registry import ChannelRegistry
from channels.sms_aliyun import AliyunSmsAdapter, AliyunSmsConfig
from channels.templates import TemplateSet
from channels.tencent_common import answer_code
from tests.channels.conftest import adapter_for
from tests.channels.fake_tencent import (
    SDK_APP_ID,
    SECRET_ID,
    SECRET_KEY,
    SIGN_NAME,
    TEMPLATES,
    TencentFault,
    tc3_signature,
)
from tests.conftest import make_settings
from tests.delivery import fake_aliyun
from warning_service.delivery.adapters import build_channels


def alert(i: int, **fields: str) -> Message:
    values = {"sender": "温岭市防指", "area": "城东街道", "hazard": "台风", "level": "红色", "reply_code": "1",
              "token": f"{i:028d}", **fields}
    return Message("sms", f"+86139{i:08d}", "text", f"k{i}", metadata={"kind": "alert", "outbox_id": str(i)},
                   template=TemplateFields(**values))


def allclear(i: int, area: str = "城东街道") -> Message:
    return Message("sms", f"+86139{i:08d}", "解除", f"c{i}", metadata={"kind": "allclear"},
                   template=TemplateFields(area=area, hazard="台风", level="红色"))


# --- what goes out ------------------------------------------------------------------------------------------

async def test_each_personal_text_goes_as_its_own_signed_call_many_at_once(fake_tencent, tencent) -> None:
    fake_tencent.latency = lambda: 0.05
    results = await asyncio.gather(*(tencent.send(alert(i)) for i in range(40)))
    assert all(r.status == "sent" and r.segments == 1 for r in results)
    calls = [r for r in fake_tencent.requests if r["code"] == "Ok"]
    assert len(calls) == 40 and all(len(c["numbers"]) == 1 for c in calls)
    assert fake_tencent.max_in_flight > 10  # concurrently, not one after another
    by_number = {n: (serial, params) for serial, n, params in fake_tencent.sent()}
    for i, r in enumerate(results):
        serial, params = by_number[f"+86139{i:08d}"]
        assert r.provider_id == serial  # what the status callback's `sid` will name
        assert params == ["温岭市防指", "城东街道", "台风", "红色", "1", f"{i:028d}"]  # {1} … {6} in order
    assert {c["context"] for c in calls} == {str(i) for i in range(40)}  # SessionContext = outbox id


async def test_identical_texts_share_calls_of_up_to_200_numbers(fake_tencent, tencent) -> None:
    msgs = [allclear(i) for i in range(450)] + [allclear(1000 + i, area="城西街道") for i in range(3)]
    results = await asyncio.gather(*(tencent.send(m) for m in msgs))
    assert all(r.status == "sent" for r in results)
    sizes = sorted((len(r["numbers"]), r["params"][0]) for r in fake_tencent.requests)
    assert sizes == [(3, "城西街道"), (50, "城东街道"), (200, "城东街道"), (200, "城东街道")]
    assert len({r.provider_id for r in results}) == 453
    assert Counter(n for _, n, _ in fake_tencent.sent()) == Counter(m.address for m in msgs)


async def test_one_bad_number_in_a_shared_call_fails_alone(fake_tencent, tencent) -> None:
    bad = Message("sms", "+8612345678901", "解除", "bad", metadata={"kind": "allclear"},
                  template=allclear(0).template)
    results = await asyncio.gather(*(tencent.send(m) for m in [allclear(1), bad, allclear(2)]))
    assert [r.status for r in results] == ["sent", "failed", "sent"]
    assert (results[1].error_code, results[1].not_sent) == ("tencent_InvalidParameterValue.IncorrectPhoneNumber",
                                                           False)
    assert len(fake_tencent.requests) == 1


# --- the server checks signatures ---------------------------------------------------------------------------

async def test_a_wrong_secret_fails_the_servers_signature_check_and_nothing_is_sent(fake_tencent) -> None:
    adapter = adapter_for(fake_tencent, secret="not-the-secret")
    r = await adapter.send(alert(1))
    await adapter.aclose()
    assert (r.status, r.error_code, r.retryable, r.not_sent) == (
        "failed", "tencent_AuthFailure.SignatureFailure", True, True)
    assert fake_tencent.sent() == []


async def test_a_body_changed_after_signing_is_refused(fake_tencent) -> None:
    """The server recomputes the signature over the body it received, not just the secret's owner."""
    body = json.dumps({"PhoneNumberSet": ["+8613900000001"], "SmsSdkAppId": SDK_APP_ID, "SignName": SIGN_NAME,
                       "TemplateId": "1002", "TemplateParamSet": ["城东街道", "台风", "红色"]}).encode()
    host = fake_tencent.base_url.removeprefix("http://")
    now = int(time.time())
    date = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
    headers = {"content-type": "application/json", "host": host}
    sig = tc3_signature(SECRET_KEY, method="POST", path="/", query="", headers=headers,
                        signed=["content-type", "host"], payload=body, timestamp=str(now), date=date, service="sms")
    auth = f"TC3-HMAC-SHA256 Credential={SECRET_ID}/{date}/sms/tc3_request, SignedHeaders=content-type;host, " \
           f"Signature={sig}"
    common = {"Content-Type": "application/json", "X-TC-Action": "SendSms", "X-TC-Version": "2021-01-11",
              "X-TC-Timestamp": str(now), "Authorization": auth}
    async with httpx.AsyncClient() as http:
        ok = (await http.post(fake_tencent.base_url + "/", content=body, headers=common)).json()["Response"]
        forged = body.replace(b"+8613900000001", b"+8613900000002")
        bad = (await http.post(fake_tencent.base_url + "/", content=forged, headers=common)).json()["Response"]
        stale = dict(common, **{"X-TC-Timestamp": str(now - 3600)})
        old = (await http.post(fake_tencent.base_url + "/", content=body, headers=stale)).json()["Response"]
    assert ok["SendStatusSet"][0]["Code"] == "Ok"
    assert bad["Error"]["Code"] == "AuthFailure.SignatureFailure"
    assert old["Error"]["Code"] == "AuthFailure.SignatureExpire"
    assert [n for _, n, _ in fake_tencent.sent()] == ["+8613900000001"]


# --- answers → results ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", [
    TencentFault(status=503, message="Service Unavailable"),
    TencentFault(code="LimitExceeded.AppDailyLimit"),
    TencentFault(code="LimitExceeded.GlobalSmsSendingRateLimit"),
    TencentFault(code="RequestLimitExceeded", message="请求的次数超过了频率限制"),
    TencentFault(code="FailedOperation.InsufficientBalanceInSmsPackage", message="套餐包余量不足"),
    TencentFault(code="UnauthorizedOperation.ServiceSuspendDueToArrears", message="欠费被停止服务"),
])
async def test_quota_throttling_and_server_errors_are_certainly_not_sent(fake_tencent, tencent, fault) -> None:
    fake_tencent.fail_next(fault)
    r = await tencent.send(alert(1))
    assert (r.status, r.retryable, r.not_sent) == ("failed", True, True)
    assert fake_tencent.sent() == []


async def test_a_refused_connection_is_certainly_not_sent(fake_tencent) -> None:
    dead = adapter_for(fake_tencent, endpoint="http://127.0.0.1:9")
    r = await dead.send(alert(1))
    await dead.aclose()
    assert (r.error_code, r.retryable, r.not_sent) == ("network_refused", True, True)


async def test_a_timeout_after_the_request_left_may_have_sent_and_is_returned_as_is(fake_tencent) -> None:
    adapter = adapter_for(fake_tencent, timeout=0.3)
    fake_tencent.fail_next(TencentFault(hang=0.6, then_send=True))
    r = await adapter.send(alert(1))
    await adapter.aclose()
    assert (r.status, r.error_code, r.retryable, r.not_sent) == ("failed", "timeout", True, False)


async def test_a_connection_cut_after_the_request_left_may_have_sent(fake_tencent, tencent) -> None:
    fake_tencent.fail_next(TencentFault(drop=True))
    r = await tencent.send(alert(1))
    assert (r.status, r.error_code, r.retryable, r.not_sent) == ("failed", "network", True, False)


@pytest.mark.parametrize(("code", "expected"), [
    ("Ok", None),
    ("InvalidParameterValue.IncorrectPhoneNumber", ("final", False)),  # no provider can reach it
    ("LimitExceeded.PhoneNumberOneHourLimit", ("final", True)),  # Tencent won't, another provider may
    ("FailedOperation.PhoneNumberInBlacklist", ("final", True)),
    ("FailedOperation.TemplateIncorrectOrUnapproved", ("final", True)),  # this platform cannot say it
    ("InvalidParameterValue.TemplateParameterLengthLimit", ("final", True)),
    ("LimitExceeded.AppDailyLimit", ("retry", True)),  # quota: wait, or the next provider
    ("AuthFailure.SecretIdNotFound", ("retry", True)),
    ("InternalError.RequestTimeException", ("retry", True)),
    ("InternalError.Timeout", ("retry", False)),  # lost on the way to the carrier: maybe sent
    ("InternalError.SendAndRecvFail", ("retry", False)),
])
def test_tencent_codes_are_classified_so_nothing_is_sent_twice(code, expected) -> None:
    r = answer_code(code, "m")
    if expected is None:
        assert r is None
        return
    kind, not_sent = expected
    assert r is not None and r.error_code == f"tencent_{code}"
    assert (r.retryable, r.not_sent) == (kind == "retry", not_sent)


# --- per-variable length rules --------------------------------------------------------------------------------

async def test_variables_follow_the_length_rules_text_shortened_exact_refused(fake_tencent) -> None:
    # sender/area at Tencent's default of 6; the server's registered caps are 6 for every variable but the token.
    fake_tencent.templates["2001"] = (6, 6, 6, 6, 6, 28)
    adapter = adapter_for(fake_tencent, templates="alert=2001:sender,area,hazard,level,reply_code,token/28")
    long_area = await adapter.send(alert(1, area="城东街道、城西街道、太平街道"))
    assert long_area.status == "sent"
    [(_, _, params)] = fake_tencent.sent()
    assert params[1] == "城东街道、…" and len(params[1]) == 6
    too_long = await adapter.send(alert(2, token="x" * 29))  # a link must never be cut
    assert (too_long.status, too_long.error_code, too_long.not_sent) == ("failed", "template_param_too_long", True)
    empty = await adapter.send(alert(3, reply_code=""))
    assert (empty.error_code, empty.not_sent) == ("template_param_empty", True)
    assert len(fake_tencent.requests) == 1  # neither went to Tencent
    await adapter.aclose()


async def test_a_cap_above_what_tencent_registered_is_refused_by_tencent_and_handed_on(fake_tencent) -> None:
    adapter = adapter_for(fake_tencent, templates="allclear=1002:area/20,hazard,level")  # Tencent allows 12
    r = await adapter.send(allclear(1, area="城东街道、城西街道、太平街道、横峰街道"))
    await adapter.aclose()
    assert (r.error_code, r.retryable, r.not_sent) == (
        "tencent_InvalidParameterValue.TemplateParameterLengthLimit", False, True)


# --- settings and the registry ----------------------------------------------------------------------------------

def tencent_settings(db, **overrides: object):
    values: dict[str, object] = {
        "channel_adapters": "sms=aliyun,tencent,twilio",
        "aliyun_access_key_id": "LTAI", "aliyun_access_key_secret": "x",
        "aliyun_sms_sign_name": SIGN_NAME, "aliyun_sms_templates": "alert=SMS_1:area,token",
        "twilio_account_sid": "AC" + "0" * 32, "twilio_auth_token": "t", "twilio_from_number": "+15005550006",
        "tencent_secret_id": SECRET_ID, "tencent_secret_key": SECRET_KEY, "tencent_sms_sdk_app_id": SDK_APP_ID,
        "tencent_sms_sign_name": SIGN_NAME, "tencent_sms_templates": TEMPLATES, **overrides}
    return make_settings(db, **values)


async def test_sms_aliyun_tencent_twilio_builds_one_failover_chain(db) -> None:
    channels: ChannelRegistry = build_channels(tencent_settings(db))
    try:
        sms = channels.get("sms")
        assert isinstance(sms, FailoverAdapter) and sms.provider_names == ["aliyun", "tencent", "twilio"]
    finally:
        await channels.aclose()


@pytest.mark.parametrize(("overrides", "named"), [
    ({"tencent_secret_key": None}, "TENCENT_SECRET_KEY"),
    ({"tencent_sms_sdk_app_id": None}, "TENCENT_SMS_SDK_APP_ID"),
    ({"tencent_sms_templates": ""}, "TENCENT_SMS_TEMPLATES"),
    ({"tencent_sms_templates": "alert=1001:area,token"}, "TENCENT_SMS_TEMPLATES: alert: the token variable"),
    ({"tencent_sms_templates": "alert=1001:area,colour"}, "unknown variable 'colour'"),
    ({"channel_adapters": "sms=twilio,voice=tencent"}, "'tencent' serves sms"),
])
async def test_a_chosen_tencent_without_what_it_needs_stops_start_up_naming_it(db, overrides, named) -> None:
    with pytest.raises(SystemExit, match=named):
        build_channels(tencent_settings(db, **overrides))


async def test_an_account_allowed_longer_variables_says_so_once_for_all_of_them(db) -> None:
    channels = build_channels(tencent_settings(db, channel_adapters="sms=tencent", tencent_sms_variable_max=30,
                                               tencent_sms_templates="alert=1001:area,token"))
    try:
        adapter = channels.get("sms").inner  # type: ignore[attr-defined]  # behind its ProviderGate
        [template] = adapter.config.templates.templates.values()
        assert [(v.name, v.max_len) for v in template.variables] == [("area", 30), ("token", 30)]
    finally:
        await channels.aclose()


# --- failover into Tencent --------------------------------------------------------------------------------------

@pytest.fixture
async def aliyun_down() -> AsyncIterator[fake_aliyun.FakeAliyun]:
    server = fake_aliyun.FakeAliyun(templates={"SMS_1": {"sender", "area", "hazard", "level", "reply_code",
                                                         "token"}})
    server.fail_next(*[fake_aliyun.AliyunFault(status=500)] * 10_000)
    runner = await fake_aliyun.start(server)
    yield server
    await runner.cleanup()


async def test_aliyun_all_5xx_every_message_goes_through_tencent_once_none_doubled(aliyun_down, fake_tencent, tencent
                                                                                    ) -> None:
    aliyun = AliyunSmsAdapter(AliyunSmsConfig(
        fake_aliyun.ACCESS_KEY_ID, fake_aliyun.ACCESS_KEY_SECRET, SIGN_NAME,
        TemplateSet.parse("alert=SMS_1:sender,area,hazard,level,reply_code,token", setting="T", default_max=35),
        endpoint=aliyun_down.base_url, batch_wait=0.01))
    failover = FailoverAdapter([("aliyun", aliyun), ("tencent", tencent)],
                               breakers=Breakers(BreakerPolicy(min_calls=10_000)))
    results = await asyncio.gather(*(failover.send(alert(i)) for i in range(300)))
    await aliyun.aclose()
    assert Counter((r.status, r.provider, r.error_code) for r in results) == {("sent", "tencent", None): 300}
    sent = Counter(n for _, n, _ in fake_tencent.sent())
    assert sent == Counter(f"+86139{i:08d}" for i in range(300))  # every one once: 0 doubled, 0 lost
    assert aliyun_down.sent() == [] and len(aliyun_down.requests) > 0
    assert failover.counts["aliyun"]["failed_refused"] == 300


async def test_a_tencent_timeout_is_not_handed_to_the_next_provider(fake_tencent) -> None:
    adapter = adapter_for(fake_tencent, timeout=0.3)
    fake_tencent.fail_next(TencentFault(hang=0.6, then_send=True))
    after = FakeAdapter(keep=True)
    r = await FailoverAdapter([("tencent", adapter), ("twilio", after)], breakers=Breakers()).send(alert(1))
    await adapter.aclose()
    assert (r.error_code, r.provider) == ("timeout", "tencent") and after.sent == []


async def test_a_bad_number_at_tencent_does_not_open_its_breaker() -> None:
    first = FakeAdapter(script=[answer_code("InvalidParameterValue.IncorrectPhoneNumber", "bad") or
                                SendResult.ok()] * 30)
    breakers = Breakers(BreakerPolicy(min_calls=5))
    failover = FailoverAdapter([("tencent", first), ("twilio", FakeAdapter(keep=True))], breakers=breakers)
    for i in range(30):
        assert (await failover.send(alert(i))).status == "failed"
    assert not breakers.is_open("tencent")

