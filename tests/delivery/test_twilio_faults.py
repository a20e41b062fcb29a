"""Provider faults end to end: the real Twilio adapter against the local server, retried by the dispatcher."""

from __future__ import annotations

from channels.fake import FakeAdapter
from channels.twilio_common import TwilioAdapter, TwilioConfig
from tests.delivery.conftest import FROM_NUMBER, attempts, issue, outbox, use
from tests.delivery.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, Fault
from warning_service.delivery.dispatcher import dispatch_tick


async def test_429_then_500_then_success_ends_sent_once(client, duty, db, runtime, clock, twilio, fake_twilio):
    use(runtime, FakeAdapter(delivered=False), ("email", "broadcast"))
    fake_twilio.fail_next(Fault(429, 20429, "Too Many Requests"), Fault(500, None, "Internal Server Error"))
    wid = await issue(client, duty, targets=["33108100100101"])
    for _ in range(3):
        await dispatch_tick(runtime)
        clock.advance(30)
    [m] = await outbox(db, warning_id=wid, channel="sms")
    assert (m.status, m.attempts) == ("sent", 3) and m.provider_id.startswith("SM")
    assert [r["answer"] for r in fake_twilio.requests] == [429, 500, 201]
    assert len(fake_twilio.messages()) == 1
    assert [(a.status, a.error_code) for a in await attempts(db, outbox_id=m.id)] == [
        ("failed", "twilio_20429"), ("failed", "twilio_500"), ("sent", None)]


async def test_a_provider_that_hangs_times_out_and_the_retry_gets_through(client, duty, db, runtime, clock,
                                                                          fake_twilio):
    slow = TwilioAdapter(TwilioConfig(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=FROM_NUMBER,
                                      api_base_url=fake_twilio.base_url, timeout=0.3))
    use(runtime, slow, ("sms", "voice"))
    use(runtime, FakeAdapter(delivered=False), ("email", "broadcast"))
    fake_twilio.fail_next(Fault(hang=1.0))
    wid = await issue(client, duty, targets=["33108100100101"])
    try:
        await dispatch_tick(runtime)
        [m] = await outbox(db, warning_id=wid, channel="sms")
        assert (m.status, m.error_code) == ("queued", "timeout")
        clock.advance(30)
        await dispatch_tick(runtime)
    finally:
        await slow.aclose()
    [m] = await outbox(db, warning_id=wid, channel="sms")
    assert (m.status, m.attempts) == ("sent", 2)


async def test_an_invalid_number_fails_at_once_without_retry(client, duty, db, runtime, clock, twilio,
                                                            fake_twilio):
    use(runtime, FakeAdapter(delivered=False), ("email", "broadcast"))
    wid = await issue(client, duty, targets=["33108100100101"])
    from sqlalchemy import update

    from warning_service.delivery.models import OutboxMessage

    async with db.session() as s:  # a number that passed import but the carrier rejects
        await s.execute(update(OutboxMessage).where(OutboxMessage.channel == "sms").values(address="+861"))
    await dispatch_tick(runtime)
    clock.advance(600)
    await dispatch_tick(runtime)
    [m] = await outbox(db, warning_id=wid, channel="sms")
    assert (m.status, m.attempts, m.error_code) == ("failed", 1, "twilio_21211")
    assert len(fake_twilio.requests) == 1
