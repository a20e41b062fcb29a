"""Aliyun SMS end to end: the dispatcher sends through the official SDK to a local Aliyun-speaking server that
checks every signature; SmsReport and SmsUp pushes come back into the receipt and 叫应 paths."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from channels.base import Message, TemplateFields
from channels.fake import FakeAdapter
from channels.sms_aliyun import AliyunSmsAdapter, AliyunSmsConfig
from channels.templates import TemplateSet
from tests.conftest import make_settings
from tests.delivery.conftest import FROM_NUMBER, attempts, issue, notices, outbox, use
from tests.delivery.fake_aliyun import ACCESS_KEY_ID, ACCESS_KEY_SECRET, AliyunFault, FakeAliyun, start
from tests.delivery.fake_twilio import ACCOUNT_SID, AUTH_TOKEN
from warning_service.acknowledgment.models import Acknowledgment
from warning_service.db import Database
from warning_service.delivery.adapters import build_channels
from warning_service.delivery.dispatcher import dispatch_tick
from warning_service.notice.tokens import link_key, parse_token

PUSH_TOKEN = "push-token-0123456789abcdefghijklmnop"
SIGN = "浙江防汛"
TEMPLATES = ("alert=SMS_480000001:sender/20,area/20,hazard,level,reply_code,token;"
             "default=SMS_480000002:area,hazard,level")
REGISTERED = {"SMS_480000001": {"sender", "area", "hazard", "level", "reply_code", "token"},
              "SMS_480000002": {"area", "hazard", "level"}}


@pytest.fixture
def settings(db: Database):
    return make_settings(db, twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
                         twilio_from_number=FROM_NUMBER, aliyun_push_token=PUSH_TOKEN)


@pytest.fixture
async def fake_aliyun() -> AsyncIterator[FakeAliyun]:
    fake = FakeAliyun(templates=REGISTERED, sign_names={SIGN})
    runner = await start(fake)
    yield fake
    await runner.cleanup()


def adapter_for(fake: FakeAliyun, *, secret: str = ACCESS_KEY_SECRET, templates: str = TEMPLATES,
                endpoint: str | None = None) -> AliyunSmsAdapter:
    return AliyunSmsAdapter(AliyunSmsConfig(
        access_key_id=ACCESS_KEY_ID, access_key_secret=secret, sign_name=SIGN,
        templates=TemplateSet.parse(templates, setting="ALIYUN_SMS_TEMPLATES", default_max=35),
        # The gather window is wide enough that a loaded machine (the sends of one claim reach the batcher over
        # a few event-loop turns) still fills one SendBatchSms; production uses ALIYUN_SMS_BATCH_WAIT_MS.
        endpoint=endpoint or fake.base_url, timeout=3.0, batch_wait=0.25))


@pytest.fixture
async def aliyun(runtime, fake_aliyun) -> AsyncIterator[AliyunSmsAdapter]:
    adapter = adapter_for(fake_aliyun)
    use(runtime, adapter, ("sms",))
    use(runtime, FakeAdapter(delivered=False), ("voice", "email", "broadcast"))
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def town_warning(client, duty, db, runtime, aliyun, fake_aliyun) -> int:
    """A red warning to a town (several people), dispatched through Aliyun."""
    wid = await issue(client, duty, targets=["331081001"])
    await dispatch_tick(runtime)
    return wid


async def push(client, path: str, items: list[dict], token: str | None = PUSH_TOKEN):
    url = f"/webhooks/aliyun/sms/{path}" + (f"?token={token}" if token is not None else "")
    return await client.post(url, content=json.dumps(items, ensure_ascii=False),
                             headers={"content-type": "application/json"})


async def test_a_warning_goes_as_one_send_batch_sms_with_each_persons_own_token_and_code(
        db, settings, town_warning, fake_aliyun) -> None:
    sms = await outbox(db, warning_id=town_warning, channel="sms")
    assert len(sms) >= 3 and all(m.status == "sent" for m in sms)
    [batch] = fake_aliyun.accepted("SendBatchSms")
    assert json.loads(batch["form"]["SignNameJson"]) == [SIGN] * len(sms)
    assert batch["query"]["TemplateCode"] == "SMS_480000001"
    sent = {n: v for _, n, v in fake_aliyun.sent()}
    key = link_key(settings.secret_key.get_secret_value())
    by_notice = {m.notice_id: m for m in sms}
    for m in sms:
        values = sent[m.address.removeprefix("+86")]
        assert parse_token(values["token"], key=key) == m.notice_id
        assert values["hazard"] == "台风" and values["level"] == "红色" and values["reply_code"] == "1"
        assert len(values["area"]) <= 20
        assert m.provider_id == f"{batch['biz_id']}:{m.address.removeprefix('+86')}"
    assert len({v["token"] for v in sent.values()}) == len(by_notice)


async def test_delivered_report_moves_message_and_notice_forward_once(client, db, town_warning) -> None:
    m, *_ = await outbox(db, warning_id=town_warning, channel="sms")
    biz_id, number = m.provider_id.split(":")
    report = [{"phone_number": number, "success": True, "biz_id": biz_id, "err_code": "DELIVERED",
               "err_msg": "用户接收成功", "send_time": "2024-07-21 18:00:00", "report_time": "2024-07-21 18:00:05",
               "sms_size": "1", "out_id": ""}]
    for _ in range(2):  # Aliyun pushes again when it missed our answer
        r = await push(client, "report", report)
        assert r.status_code == 200 and r.json() == {"code": 0, "msg": "成功"}
    [m] = await outbox(db, id=m.id)
    assert m.status == "delivered"
    n = next(n for n in await notices(db, town_warning) if n.id == m.notice_id)
    assert n.state == "delivered"
    [a] = await attempts(db, outbox_id=m.id)
    assert (a.status, a.receipt_status) == ("sent", "delivered")


async def test_failed_report_records_the_operator_error(client, db, town_warning) -> None:
    m, *_ = await outbox(db, warning_id=town_warning, channel="sms")
    biz_id, number = m.provider_id.split(":")
    r = await push(client, "report", [{"phone_number": number, "success": False, "biz_id": biz_id,
                                       "err_code": "MK:0001", "err_msg": "空号"}])
    assert r.status_code == 200
    [m] = await outbox(db, id=m.id)
    assert (m.status, m.error_code) == ("undelivered", "aliyun_MK:0001")


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
async def test_push_without_the_token_is_refused_and_changes_nothing(client, db, town_warning, token) -> None:
    m, *_ = await outbox(db, warning_id=town_warning, channel="sms")
    biz_id, number = m.provider_id.split(":")
    r = await push(client, "report", [{"phone_number": number, "success": True, "biz_id": biz_id}], token=token)
    assert r.status_code == 403 and r.json()["detail"]["message_zh"]
    r = await push(client, "up", [{"phone_number": number, "content": "1"}], token=token)
    assert r.status_code == 403
    [m] = await outbox(db, id=m.id)
    assert m.status == "sent"
    assert all(n.state == "pending" for n in await notices(db, town_warning))


async def test_a_malformed_item_refuses_the_whole_push(client, db, town_warning) -> None:
    m, *_ = await outbox(db, warning_id=town_warning, channel="sms")
    biz_id, number = m.provider_id.split(":")
    r = await push(client, "report", [{"phone_number": number, "success": True, "biz_id": biz_id},
                                      {"phone_number": number, "biz_id": biz_id}])
    assert r.status_code == 422 and r.json()["detail"]["field"] == "1.success"
    [m] = await outbox(db, id=m.id)
    assert m.status == "sent"


async def test_uplink_reply_acknowledges_the_notice_exactly_once(client, db, town_warning) -> None:
    m, *_ = await outbox(db, warning_id=town_warning, channel="sms")
    number = m.address.removeprefix("+86")
    for _ in range(2):
        r = await push(client, "up", [{"phone_number": number, "content": "收到", "send_time": "2024-07-21 18:01:00",
                                       "sign_name": SIGN, "dest_code": "1234", "sequence_id": 1}])
        assert r.status_code == 200
    async with db.session() as s:
        acks = (await s.execute(select(Acknowledgment.path, func.count()).where(
            Acknowledgment.notice_id == m.notice_id).group_by(Acknowledgment.path))).all()
    assert acks == [("sms_reply", 1)]
    n = next(n for n in await notices(db, town_warning) if n.id == m.notice_id)
    assert n.state == "acknowledged"


# --- the adapter against the server -------------------------------------------------------------------------

def message(i: int = 0, **fields: str) -> Message:
    values = {"sender": "温岭市防指", "area": "城东街道", "hazard": "台风", "level": "红色", "reply_code": "1",
              "token": f"tok{i:04d}", **fields}
    return Message("sms", f"+86139{i:08d}", "text", f"k{i}", metadata={"kind": "alert", "outbox_id": str(i)},
                   template=TemplateFields(**values))


async def test_a_wrong_secret_fails_the_servers_signature_check_and_is_not_sent(fake_aliyun) -> None:
    adapter = adapter_for(fake_aliyun, secret="not-the-secret")
    r = await adapter.send(message())
    assert (r.status, r.error_code, r.retryable, r.not_sent) == ("failed", "aliyun_SignatureDoesNotMatch", True, True)
    assert fake_aliyun.sent() == []


async def test_a_lone_message_goes_as_send_sms_with_its_outbox_id(fake_aliyun) -> None:
    adapter = adapter_for(fake_aliyun)
    r = await adapter.send(message(7))
    [req] = fake_aliyun.accepted()
    assert req["action"] == "SendSms" and req["query"]["OutId"] == "7" and r.provider_id.endswith(":13900000007")


async def test_long_text_variables_are_shortened_and_exact_ones_refused(fake_aliyun) -> None:
    adapter = adapter_for(fake_aliyun)
    ok = await adapter.send(message(1, area="城东街道、城西街道、太平街道、横峰街道、大溪镇、泽国镇、温峤镇"))
    assert ok.status == "sent"
    [(_, _, values)] = fake_aliyun.sent()
    assert len(values["area"]) == 20 and values["area"].endswith("…")
    bad = await adapter.send(message(2, token="x" * 40))
    assert (bad.status, bad.error_code, bad.not_sent) == ("failed", "template_param_too_long", True)
    assert len(fake_aliyun.sent()) == 1


async def test_one_bad_number_does_not_sink_the_rest_of_its_batch(fake_aliyun) -> None:
    import asyncio

    adapter = adapter_for(fake_aliyun)
    msgs = [message(i) for i in range(5)] + [Message("sms", "+8612345", "t", "bad", metadata={"kind": "alert"},
                                                     template=message(9).template)]
    results = await asyncio.gather(*(adapter.send(m) for m in msgs))
    assert [r.status for r in results[:5]] == ["sent"] * 5
    assert (results[5].status, results[5].error_code) == ("failed", "aliyun_isv.MOBILE_NUMBER_ILLEGAL")


async def test_many_messages_at_once_go_as_one_call_per_template_and_hundred_numbers_in_order(fake_aliyun) -> None:
    adapter = adapter_for(fake_aliyun)
    unmapped = Message("sms", "+8613900000999", "t", "x", metadata={"kind": "no_such_kind"}, template=None)
    msgs = [message(i) for i in range(230)] + [unmapped]
    results = await adapter.send_many(msgs)
    calls = fake_aliyun.accepted("SendBatchSms")
    assert sorted(len(c["numbers"]) for c in calls) == [30, 100, 100]
    assert [r.status for r in results[:230]] == ["sent"] * 230
    # Each result is its own message's: the provider id names the number it was sent to.
    pairs = zip(msgs[:230], results[:230], strict=True)
    assert all(r.provider_id.endswith(m.address.removeprefix("+86")) for m, r in pairs)
    assert results[230].status == "failed" and results[230].not_sent  # refused before any call, passed on
    assert len(fake_aliyun.sent()) == 230


async def test_server_errors_and_refused_connections_are_certainly_not_sent(fake_aliyun) -> None:
    adapter = adapter_for(fake_aliyun)
    fake_aliyun.fail_next(AliyunFault(status=503), AliyunFault(status=200, code="isv.BUSINESS_LIMIT_CONTROL"))
    for _ in range(2):
        r = await adapter.send(message())
        assert r.status == "failed" and r.retryable and r.not_sent
    dead = adapter_for(fake_aliyun, endpoint="http://127.0.0.1:9")
    r = await dead.send(message())
    assert (r.error_code, r.not_sent) == ("network_refused", True)


async def test_a_chosen_aliyun_without_credentials_stops_start_up_naming_the_setting(db) -> None:
    s = make_settings(db, channel_adapters="sms=aliyun,twilio", aliyun_access_key_id="LTAI",
                      aliyun_sms_sign_name=SIGN, aliyun_sms_templates=TEMPLATES)
    with pytest.raises(SystemExit, match="ALIYUN_ACCESS_KEY_SECRET"):
        build_channels(s)
    s = make_settings(db, channel_adapters="sms=aliyun", aliyun_access_key_id="LTAI", aliyun_access_key_secret="x",
                      aliyun_sms_sign_name=SIGN, aliyun_sms_templates="alert=SMS_1:area,colour")
    with pytest.raises(SystemExit, match="ALIYUN_SMS_TEMPLATES: alert: unknown variable 'colour'"):
        build_channels(s)
