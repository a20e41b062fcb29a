"""Twilio end to end: the dispatcher sends through the real library, status callbacks come back signed."""

from __future__ import annotations

import pytest

from channels.fake import FakeAdapter
from tests.delivery.conftest import attempts, issue, notices, outbox, signed_post_args, use
from tests.delivery.fake_twilio import Fault
from warning_service.delivery.dispatcher import dispatch_tick

STATUS_URL = "http://testserver/webhooks/twilio/status"


async def callback(client, o: int | None, params: dict[str, str], token: str | None = None, **kw):
    url = STATUS_URL + (f"?o={o}" if o else "")
    args = signed_post_args(url, params, **({"token": token} if token else {}))
    args.update(kw)
    return await client.post(url, **args)


@pytest.fixture
async def sent_sms(client, duty, db, runtime, twilio, fake_twilio):
    """One grid person's red warning SMS, accepted by Twilio (status 'sent', receipt pending)."""
    use(runtime, FakeAdapter(delivered=False), ("email", "broadcast"))
    wid = await issue(client, duty, targets=["33108100100101"])
    await dispatch_tick(runtime)
    [m] = await outbox(db, warning_id=wid, channel="sms")
    assert m.status == "sent" and m.provider_id.startswith("SM")
    return m


async def test_sms_goes_through_twilio_with_callback_and_from(sent_sms, fake_twilio) -> None:
    [req] = fake_twilio.messages()
    assert req["form"]["To"] == sent_sms.address and sent_sms.address.startswith("+86")
    assert req["form"]["From"] == "+15005550006"
    assert "台风" in req["form"]["Body"]
    assert req["form"]["StatusCallback"] == f"{STATUS_URL}?o={sent_sms.id}"


async def test_signed_delivered_receipt_moves_message_and_notice_forward(client, db, sent_sms) -> None:
    r = await callback(client, sent_sms.id, {"MessageSid": sent_sms.provider_id, "MessageStatus": "delivered",
                                             "AccountSid": "AC1"})
    assert r.status_code == 200
    [m] = await outbox(db, id=sent_sms.id)
    assert m.status == "delivered" and m.delivered_at is not None
    [n] = await notices(db, m.warning_id)
    assert n.state == "delivered" and n.delivered_at is not None
    [a] = await attempts(db, outbox_id=m.id)
    assert (a.status, a.receipt_status) == ("sent", "delivered")


async def test_replayed_and_out_of_order_receipts_never_move_backwards(client, db, sent_sms) -> None:
    sid = sent_sms.provider_id
    for status in ("delivered", "sent", "queued", "delivered", "undelivered"):
        r = await callback(client, sent_sms.id, {"MessageSid": sid, "MessageStatus": status})
        assert r.status_code == 200
    [m] = await outbox(db, id=sent_sms.id)
    assert m.status == "delivered"
    [a] = await attempts(db, outbox_id=m.id)
    assert a.receipt_status == "delivered"


async def test_undelivered_receipt_records_the_carrier_error(client, db, sent_sms) -> None:
    await callback(client, sent_sms.id, {"MessageSid": sent_sms.provider_id, "MessageStatus": "undelivered",
                                         "ErrorCode": "30003"})
    [m] = await outbox(db, id=sent_sms.id)
    assert (m.status, m.error_code) == ("undelivered", "twilio_30003")
    [n] = await notices(db, m.warning_id)
    assert n.state == "pending"


@pytest.mark.parametrize("case", ["unsigned", "wrong_token", "tampered", "other_url"])
async def test_unsigned_or_wrongly_signed_receipts_are_refused_and_change_nothing(client, db, sent_sms,
                                                                                  case) -> None:
    params = {"MessageSid": sent_sms.provider_id, "MessageStatus": "delivered"}
    url = f"{STATUS_URL}?o={sent_sms.id}"
    if case == "unsigned":
        r = await client.post(url, data=params)
    elif case == "wrong_token":
        r = await callback(client, sent_sms.id, params, token="guessed-token")
    elif case == "tampered":
        args = signed_post_args(url, {**params, "MessageStatus": "failed"})
        r = await client.post(url, data=params, headers=args["headers"])
    else:
        args = signed_post_args(f"{STATUS_URL}?o={sent_sms.id + 1000}", params)  # signed for another row
        r = await client.post(url, **args)
    assert r.status_code == 403
    [m] = await outbox(db, id=sent_sms.id)
    assert m.status == "sent"
    assert all(a.receipt_status is None for a in await attempts(db, outbox_id=m.id))


async def test_a_previous_auth_token_still_verifies_during_rotation(client, db, sent_sms) -> None:
    r = await callback(client, sent_sms.id, {"MessageSid": sent_sms.provider_id, "MessageStatus": "delivered"},
                       token="previous-token-1")
    assert r.status_code == 200
    assert (await outbox(db, id=sent_sms.id))[0].status == "delivered"


async def test_unknown_sid_is_acknowledged_and_ignored(client, db, sent_sms) -> None:
    r = await callback(client, None, {"MessageSid": "SM" + "f" * 32, "MessageStatus": "delivered"})
    assert r.status_code == 200
    assert (await outbox(db, id=sent_sms.id))[0].status == "sent"


async def test_a_receipt_outrunning_the_dispatcher_write_still_lands(client, db, runtime, duty, twilio,
                                                                     fake_twilio, monkeypatch) -> None:
    """Twilio's callback can arrive before the batch's results are written; the URL's row id catches it."""
    from warning_service.delivery import store

    real_write = store.write

    async def write_after_receipt(db, outcomes, **kw):
        for o in outcomes:
            if o.result and o.result.provider_id:
                r = await callback(client, o.item.row.id, {"MessageSid": o.result.provider_id,
                                                           "MessageStatus": "delivered"})
                assert r.status_code == 200
        return await real_write(db, outcomes, **kw)

    monkeypatch.setattr(store, "write", write_after_receipt)
    wid = await issue(client, duty, targets=["33108100100101"])
    await dispatch_tick(runtime)
    [m] = await outbox(db, warning_id=wid, channel="sms")
    assert m.status == "delivered" and m.provider_id.startswith("SM") and m.sent_at is not None
    got = await attempts(db, outbox_id=m.id)
    assert {a.status for a in got} >= {"sent"} and any(a.receipt_status == "delivered" for a in got)


async def test_a_late_receipt_for_a_timed_out_send_stops_the_retry(client, db, runtime, duty, twilio,
                                                                   fake_twilio) -> None:
    """Our side timed out but Twilio had accepted: its receipt arrives and the message is not sent again."""
    fake_twilio.fail_next(Fault(status=504, code=None, message="Gateway Timeout"))
    wid = await issue(client, duty, targets=["33108100100101"])
    await dispatch_tick(runtime)
    [m] = await outbox(db, warning_id=wid, channel="sms")
    assert (m.status, m.provider_id) == ("queued", None)
    r = await callback(client, m.id, {"MessageSid": "SM" + "a" * 32, "MessageStatus": "sent"})
    assert r.status_code == 200
    [m] = await outbox(db, id=m.id)
    assert (m.status, m.provider_id) == ("sent", "SM" + "a" * 32)
    runtime.clock.advance(60)
    await dispatch_tick(runtime)
    assert len(fake_twilio.messages()) == 0  # no second SMS
    assert [a.adapter for a in await attempts(db, outbox_id=m.id)] == ["twilio", "receipt"]


@pytest.mark.parametrize(("call_status", "expected"), [
    ("completed", "delivered"), ("busy", "undelivered"), ("no-answer", "undelivered"),
    ("failed", "undelivered"), ("canceled", "undelivered"), ("ringing", "sent"),
])
async def test_call_status_callbacks_map_to_delivered_or_not(client, db, runtime, duty, twilio, fake_twilio,
                                                             call_status, expected) -> None:
    use(runtime, FakeAdapter(delivered=False), ("email", "broadcast"))
    wid = await issue(client, duty, targets=["33108100100101"])
    await _queue_recall_call(db, wid, runtime.clock.now())
    await dispatch_tick(runtime)
    [m] = await outbox(db, warning_id=wid, channel="voice")
    assert m.status == "sent" and m.provider_id.startswith("CA")
    [call] = fake_twilio.calls()
    assert 'language="zh-CN"' in call["form"]["Twiml"] and "<Gather" in call["form"]["Twiml"]
    r = await callback(client, m.id, {"CallSid": m.provider_id, "CallStatus": call_status})
    assert r.status_code == 200
    [m] = await outbox(db, id=m.id)
    assert m.status == expected
    [n] = await notices(db, wid)
    assert n.state == ("delivered" if expected == "delivered" else "pending")


async def _queue_recall_call(db, warning_id: int, now) -> None:
    """What the escalation feature queues for a silent person: a voice re-call."""
    from warning_service.delivery.models import OutboxMessage
    from warning_service.notice.models import Notice

    async with db.session() as s:
        from sqlalchemy import select

        n = (await s.execute(select(Notice).where(Notice.warning_id == warning_id))).scalars().one()
        from warning_service.person.models import Person

        phone = (await s.get(Person, n.person_id)).phone
        s.add(OutboxMessage(warning_id=warning_id, notice_id=n.id, kind="recall", channel="voice",
                            address=phone, priority=4, next_attempt_at=now, idempotency_key=f"n{n.id}:recall:1",
                            created_at=now, updated_at=now))
