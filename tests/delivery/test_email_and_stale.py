"""E-mail through a real SMTP server via the dispatcher, and messages that must no longer go."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from channels.email_smtp import SmtpAdapter, SmtpConfig
from channels.fake import FakeAdapter
from tests.channels.smtp_server import Inbox, free_port, start_smtp
from tests.delivery.conftest import issue, notices, outbox, status_counts, use
from warning_service.delivery.dispatcher import dispatch_tick
from warning_service.delivery.models import OutboxMessage
from warning_service.ledger.models import LedgerPending
from warning_service.notice.models import Notice


async def test_email_arrives_with_subject_chinese_text_and_link_after_the_server_comes_back(
        client, duty, db, runtime, clock):
    port = free_port()
    smtp = SmtpAdapter(SmtpConfig(host="127.0.0.1", port=port, sender="alerts@ws.example.cn", timeout=3.0))
    use(runtime, smtp, ("email",))
    use(runtime, FakeAdapter(delivered=False), ("sms", "broadcast"))
    wid = await issue(client, duty, targets=["33108100100101"])
    [queued] = await outbox(db, warning_id=wid, channel="email")
    inbox = Inbox()
    try:
        await dispatch_tick(runtime)  # nobody listening on the port yet
        [m] = await outbox(db, id=queued.id)
        assert (m.status, m.error_code, m.attempts) == ("queued", "smtp_connect", 1)
        controller = start_smtp(inbox, port=port)
        try:
            clock.advance(60)
            await dispatch_tick(runtime)
        finally:
            controller.stop()
    finally:
        await smtp.aclose()
    [m] = await outbox(db, id=queued.id)
    assert (m.status, m.attempts) == ("sent", 2)
    [mail] = inbox.received
    assert mail["To"] == queued.address
    assert "台风" in mail["Subject"] and "红色" in mail["Subject"]
    text = mail.get_body(("plain",)).get_content()
    assert "台风" in text and "http://testserver/a/" in text
    assert mail.get_body(("html",)) is not None


async def test_expired_warning_messages_are_cancelled_not_sent(client, duty, db, runtime, clock, console):
    expires = (clock.now() + timedelta(hours=1)).isoformat()
    wid = await issue(client, duty, targets=["331081001001"], expires_at=expires)
    total = len(await outbox(db, warning_id=wid))
    clock.advance(timedelta(hours=2))  # the expiry sweep has not run yet
    await dispatch_tick(runtime)
    assert console.sent == []
    assert await status_counts(db, wid) == {"cancelled": total}
    assert {m.error_code for m in await outbox(db, warning_id=wid)} == {"warning_expired"}
    assert all(m.attempts == 0 for m in await outbox(db, warning_id=wid))
    async with db.session() as s:
        entries = (await s.execute(select(LedgerPending).where(LedgerPending.action == "messages.cancelled"))
                   ).scalars().all()
    assert [e.details["count"] for e in entries] == [total]


async def test_a_lifted_warning_still_announces_its_lift(client, duty, db, runtime, console):
    wid = await issue(client, duty, targets=["331081001001"])
    await dispatch_tick(runtime)
    reached = len(console.sent)
    r = await client.post(f"/api/v1/warnings/{wid}/lift", headers=duty, json={"reason": "台风已减弱"})
    assert r.status_code == 200, r.text
    cancels = await outbox(db, warning_id=wid, kind="cancel")
    assert cancels
    await dispatch_tick(runtime)
    assert len(console.sent) == reached + len(cancels)
    assert {m.status for m in await outbox(db, warning_id=wid, kind="cancel")} == {"delivered"}


async def _queue(db, notice_id: int, kind: str, now) -> int:
    async with db.session() as s:
        n = await s.get(Notice, notice_id)
        row = OutboxMessage(warning_id=n.warning_id, notice_id=n.id, kind=kind, channel="voice",
                            address="+8613900000999", priority=4, next_attempt_at=now,
                            idempotency_key=f"n{n.id}:{kind}:test", created_at=now, updated_at=now)
        s.add(row)
        await s.flush()
        return row.id


async def test_recall_deputy_and_escalation_calls_are_dropped_once_the_silence_ends(client, duty, db, runtime,
                                                                                     clock, console):
    wid = await issue(client, duty, targets=["331081001001"])
    await dispatch_tick(runtime)
    console.sent.clear()
    ns = await notices(db, wid)
    silent, answered, other = ns[0], ns[1], ns[2]
    now = clock.now()
    async with db.session() as s:
        await s.execute(update(Notice).where(Notice.id == answered.id).values(state="acknowledged",
                                                                              acknowledged_at=now))
        # the escalation feature's notices: a deputy for the one who answered, one above for the silent one
        deputy = Notice(warning_id=wid, person_id=other.person_id, role=other.role, region_code=other.region_code,
                        reason="deputy", escalation_of=answered.id, root_id=answered.id, state="pending",
                        created_at=now)
        boss = Notice(warning_id=wid, person_id=other.person_id, role=other.role, region_code=other.region_code,
                      reason="escalation", escalation_of=silent.id, root_id=silent.id, state="pending",
                      created_at=now)
        s.add_all([deputy, boss])
        await s.flush()
        deputy_id, boss_id = deputy.id, boss.id
    recall_answered = await _queue(db, answered.id, "recall", now)
    recall_silent = await _queue(db, silent.id, "recall", now)
    to_deputy = await _queue(db, deputy_id, "deputy", now)
    to_boss = await _queue(db, boss_id, "escalation", now)

    await dispatch_tick(runtime)

    got = {m.id: (m.status, m.error_code) for m in await outbox(db, warning_id=wid, channel="voice")}
    assert got[recall_answered] == ("cancelled", "notice_acknowledged")
    assert got[to_deputy] == ("cancelled", "silent_notice_acknowledged")
    assert got[recall_silent][0] == "delivered" and got[to_boss][0] == "delivered"
    assert len(console.sent) == 2
