"""The dispatcher end to end with the real warning flow and templates: claim, send, record, move forward."""

from __future__ import annotations

from channels.base import SendResult
from channels.fake import FakeAdapter
from tests.delivery.conftest import attempts, issue, notices, outbox, status_counts, use
from warning_service.delivery.dispatcher import dispatch_once, dispatch_tick


async def test_console_delivers_every_queued_message_and_marks_notices_delivered(client, duty, db, runtime,
                                                                                   console):
    wid = await issue(client, duty, targets=["331081001"])
    queued = await outbox(db, warning_id=wid)
    assert queued and all(m.status == "queued" for m in queued)

    handled = await dispatch_tick(runtime)

    assert handled == len(queued)
    assert await status_counts(db, wid) == {"delivered": len(queued)}
    assert len(console.sent) == len(queued)
    assert runtime.counters.get("delivered") == len(queued)  # what /metrics shows for this process
    assert {m.idempotency_key for m in console.sent} == {m.idempotency_key for m in queued}
    got = await attempts(db)
    assert len(got) == len(queued) and all(a.status == "delivered" and a.adapter == "console" for a in got)
    assert all(n.state == "delivered" and n.delivered_at is not None for n in await notices(db, wid))
    sms = await outbox(db, warning_id=wid, channel="sms")
    assert all(m.segments and m.segments >= 1 for m in sms)


async def test_sms_rendered_in_chinese_with_an_acknowledgment_link(client, duty, db, runtime, console):
    wid = await issue(client, duty, targets=["331081001001"])
    await dispatch_tick(runtime)
    sms = [m for m in console.sent if m.channel == "sms"]
    assert sms and all("台风" in m.body and "红色" in m.body for m in sms)
    assert all("http://testserver/a/" in m.body for m in sms)
    # the status callback names the outbox row so a receipt can find it before the provider id is written
    ids = {m.id for m in await outbox(db, warning_id=wid, channel="sms")}
    assert {int(m.status_callback.rsplit("o=", 1)[1]) for m in sms} == ids


async def test_provider_accepting_is_sent_not_delivered_and_the_notice_stays_pending(client, duty, db,
                                                                                      runtime):
    fake = FakeAdapter(delivered=False)
    use(runtime, fake)
    wid = await issue(client, duty, targets=["331081001001"])
    await dispatch_tick(runtime)
    assert set(await status_counts(db, wid)) == {"sent"}
    assert all(n.state == "pending" for n in await notices(db, wid))
    assert all(m.provider_id and m.provider_id.startswith("fake-") for m in await outbox(db, warning_id=wid))


async def test_a_permanent_error_fails_at_once_and_is_visible(client, duty, db, runtime):
    use(runtime, FakeAdapter(script=[SendResult.permanent("twilio_21211", "invalid To")]), ("sms",))
    wid = await issue(client, duty, targets=["33108100100101"])  # one grid: one person
    await dispatch_tick(runtime)
    sms = await outbox(db, warning_id=wid, channel="sms")
    assert [(m.status, m.error_code, m.attempts) for m in sms] == [("failed", "twilio_21211", 1)]
    assert [(a.status, a.error_code, a.retryable) for a in await attempts(db, outbox_id=sms[0].id)] == [
        ("failed", "twilio_21211", False)]


async def test_transient_errors_retry_with_backoff_until_sent(client, duty, db, runtime, clock):
    script = [SendResult.transient("twilio_20429", "Too Many Requests"),
              SendResult.transient("twilio_20500", "Internal Server Error")]
    use(runtime, FakeAdapter(script=script, delivered=False), ("sms",))
    wid = await issue(client, duty, targets=["33108100100101"])
    await dispatch_tick(runtime)
    [m] = await outbox(db, warning_id=wid, channel="sms")
    assert (m.status, m.attempts, m.error_code) == ("queued", 1, "twilio_20429")
    # base 1 s: the first retry waits between 0.5 and 1 s
    assert 0.5 <= (m.next_attempt_at - clock.now()).total_seconds() <= 1.0
    assert await dispatch_once(runtime, batch_size=10) == 0  # not due yet
    clock.advance(1)
    await dispatch_tick(runtime)
    [m] = await outbox(db, warning_id=wid, channel="sms")
    assert (m.status, m.attempts) == ("queued", 2)
    assert 1.0 <= (m.next_attempt_at - clock.now()).total_seconds() <= 2.0
    clock.advance(2)
    await dispatch_tick(runtime)
    [m] = await outbox(db, warning_id=wid, channel="sms")
    assert (m.status, m.attempts, m.error_code) == ("sent", 3, None)
    assert [a.status for a in await attempts(db, outbox_id=m.id)] == ["failed", "failed", "sent"]


async def test_retries_stop_after_the_configured_attempts(client, duty, db, runtime, clock):
    runtime.settings.retry_max_attempts = 3
    use(runtime, FakeAdapter(script=[SendResult.transient("timeout", "slow")] * 10), ("sms",))
    wid = await issue(client, duty, targets=["33108100100101"])
    for _ in range(5):
        await dispatch_tick(runtime)
        clock.advance(60)
    [m] = await outbox(db, warning_id=wid, channel="sms")
    assert (m.status, m.attempts, m.error_code) == ("failed", 3, "timeout")
