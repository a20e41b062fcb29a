"""Tencent Cloud SMS end to end: a warning dispatched through the real adapter and SDK to the local Tencent server
(signatures checked); Tencent's status and reply callbacks come back into the receipt and 叫应 paths, once."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from channels.breaker import Breakers
from channels.failover import FailoverAdapter
from channels.fake import FakeAdapter
from channels.sms_aliyun import AliyunSmsAdapter, AliyunSmsConfig
from channels.sms_tencent import TencentSmsAdapter
from channels.templates import TemplateSet
from tests.channels.conftest import adapter_for
from tests.conftest import make_settings
from tests.delivery import fake_aliyun
from tests.delivery.conftest import attempts, issue, notices, outbox, use
from warning_service.acknowledgment.models import Acknowledgment
from warning_service.db import Database
from warning_service.delivery.dispatcher import dispatch_tick
from warning_service.notice.tokens import link_key, parse_token

PUSH_TOKEN = "tencent-push-token-0123456789abcdefghij"


@pytest.fixture
def settings(db: Database):
    return make_settings(db, tencent_push_token=PUSH_TOKEN)


@pytest.fixture
async def tencent(runtime, fake_tencent) -> AsyncIterator[TencentSmsAdapter]:
    adapter = adapter_for(fake_tencent)
    use(runtime, adapter, ("sms",))
    use(runtime, FakeAdapter(delivered=False), ("voice", "email", "broadcast"))
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def town_warning(client, duty, db, runtime, tencent) -> int:
    """A red warning to a town (several people), its SMS sent through Tencent."""
    wid = await issue(client, duty, targets=["331081001"])
    await dispatch_tick(runtime)
    return wid


async def push(client, path: str, body: object, token: str | None = PUSH_TOKEN):
    url = f"/webhooks/tencent/sms/{path}" + (f"?token={token}" if token is not None else "")
    return await client.post(url, content=json.dumps(body, ensure_ascii=False),
                             headers={"content-type": "application/json"})


def report(m, *, ok: bool = True) -> dict[str, str]:
    """One item of Tencent's 短信下发状态回调, for outbox row `m`."""
    return {"user_receive_time": "2024-07-21 18:00:05", "nationcode": "86", "mobile": m.address.removeprefix("+86"),
            "report_status": "SUCCESS" if ok else "FAIL", "errmsg": "DELIVRD" if ok else "MK:0001",
            "description": "用户短信送达成功" if ok else "空号", "sid": m.provider_id}


async def test_each_person_gets_their_own_text_and_the_serial_no_is_kept(db, settings, town_warning,
                                                                        fake_tencent) -> None:
    sms = await outbox(db, warning_id=town_warning, channel="sms")
    assert len(sms) >= 3 and all(m.status == "sent" for m in sms)
    sent = {n: (serial, params) for serial, n, params in fake_tencent.sent()}
    key = link_key(settings.secret_key.get_secret_value())
    for m in sms:
        serial, params = sent[m.address]
        assert m.provider_id == serial
        sender, area, hazard, level, reply_code, token = params
        assert parse_token(token, key=key) == m.notice_id
        assert (hazard, level, reply_code) == ("台风", "红色", "1") and len(area) <= 12 and len(sender) <= 12
    assert len(fake_tencent.requests) == len(sms)  # one call per person: each text is their own


async def test_delivered_report_moves_message_and_notice_forward_once(client, db, town_warning) -> None:
    m, *_ = await outbox(db, warning_id=town_warning, channel="sms")
    for _ in range(2):  # Tencent calls again when it missed our answer
        r = await push(client, "report", [report(m)])
        assert r.status_code == 200 and r.json() == {"result": 0, "errmsg": "OK"}
    [m] = await outbox(db, id=m.id)
    assert m.status == "delivered"
    n = next(n for n in await notices(db, town_warning) if n.id == m.notice_id)
    assert n.state == "delivered"
    [a] = await attempts(db, outbox_id=m.id)
    assert (a.status, a.receipt_status) == ("sent", "delivered")


async def test_failed_report_records_the_operator_error(client, db, town_warning) -> None:
    m, *_ = await outbox(db, warning_id=town_warning, channel="sms")
    r = await push(client, "report", [report(m, ok=False)])
    assert r.status_code == 200
    [m] = await outbox(db, id=m.id)
    assert (m.status, m.error_code) == ("undelivered", "tencent_MK:0001")


@pytest.mark.parametrize("token", [None, "", "wrong-token", PUSH_TOKEN[:-1]])
async def test_callbacks_without_the_token_are_refused_and_change_nothing(client, db, town_warning, token) -> None:
    m, *_ = await outbox(db, warning_id=town_warning, channel="sms")
    r = await push(client, "report", [report(m)], token=token)
    assert r.status_code == 403 and r.json()["detail"]["message_zh"]
    r = await push(client, "reply", {"mobile": m.address.removeprefix("+86"), "nationcode": "86", "text": "1"},
                   token=token)
    assert r.status_code == 403
    [m] = await outbox(db, id=m.id)
    assert m.status == "sent"
    assert all(n.state == "pending" for n in await notices(db, town_warning))


async def test_callbacks_are_refused_when_no_token_is_configured(client, db, app, town_warning) -> None:
    m, *_ = await outbox(db, warning_id=town_warning, channel="sms")
    app.state.settings = make_settings(db)  # TENCENT_PUSH_TOKEN unset
    r = await push(client, "report", [report(m)], token="")
    assert r.status_code == 403 and "TENCENT_PUSH_TOKEN" in r.text


async def test_a_malformed_item_refuses_the_whole_report(client, db, town_warning) -> None:
    m, *_ = await outbox(db, warning_id=town_warning, channel="sms")
    bad = {**report(m), "report_status": "MAYBE"}
    r = await push(client, "report", [report(m), bad])
    assert r.status_code == 422 and r.json()["detail"]["field"] == "1.report_status"
    [m] = await outbox(db, id=m.id)
    assert m.status == "sent"


async def test_a_reply_acknowledges_the_notice_exactly_once(client, db, town_warning) -> None:
    m, *_ = await outbox(db, warning_id=town_warning, channel="sms")
    reply = {"extend": "", "mobile": m.address.removeprefix("+86"), "nationcode": "86", "sign": "浙江防汛",
             "text": "收到", "time": 1721556060}
    for _ in range(2):
        r = await push(client, "reply", reply)
        assert r.status_code == 200 and r.json() == {"result": 0, "errmsg": "OK"}
    async with db.session() as s:
        acks = (await s.execute(select(Acknowledgment.path, func.count()).where(
            Acknowledgment.notice_id == m.notice_id).group_by(Acknowledgment.path))).all()
    assert acks == [("sms_reply", 1)]
    n = next(n for n in await notices(db, town_warning) if n.id == m.notice_id)
    assert n.state == "acknowledged"


# --- failover: Aliyun down, Tencent sends, and Tencent's receipts find the messages ------------------------------

@pytest.fixture
async def aliyun_down() -> AsyncIterator[fake_aliyun.FakeAliyun]:
    server = fake_aliyun.FakeAliyun(templates={"SMS_1": {"sender", "area", "hazard", "level", "reply_code",
                                                         "token"}})
    server.fail_next(*[fake_aliyun.AliyunFault(status=503)] * 10_000)
    runner = await fake_aliyun.start(server)
    yield server
    await runner.cleanup()


async def test_with_aliyun_down_a_warning_goes_through_tencent_once_and_its_receipts_land(
        client, duty, db, runtime, tencent, fake_tencent, aliyun_down) -> None:
    aliyun = AliyunSmsAdapter(AliyunSmsConfig(
        fake_aliyun.ACCESS_KEY_ID, fake_aliyun.ACCESS_KEY_SECRET, "浙江防汛",
        TemplateSet.parse("alert=SMS_1:sender/20,area/20,hazard,level,reply_code,token", setting="T",
                          default_max=35), endpoint=aliyun_down.base_url, timeout=15.0, batch_wait=0.02))
    use(runtime, FailoverAdapter([("aliyun", aliyun), ("tencent", tencent)], breakers=Breakers()), ("sms",))
    try:
        wid = await issue(client, duty, targets=["331081001"])
        await dispatch_tick(runtime)
    finally:
        await aliyun.aclose()
    sms = await outbox(db, warning_id=wid, channel="sms")
    assert len(sms) >= 3 and all(m.status == "sent" for m in sms)
    assert Counter(n for _, n, _ in fake_tencent.sent()) == Counter(m.address for m in sms)  # each once
    assert aliyun_down.sent() == [] and aliyun_down.requests
    for m in sms:
        assert len(await attempts(db, outbox_id=m.id)) == 1
    r = await push(client, "report", [report(m) for m in sms])
    assert r.status_code == 200
    assert {m.status for m in await outbox(db, warning_id=wid, channel="sms")} == {"delivered"}
