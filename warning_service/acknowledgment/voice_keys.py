"""Key presses pushed by Aliyun 语音服务 (IvrCall): key 1 acknowledges the notice the call was for.

Unlike Twilio's <Gather>, whose action URL names the notice by its token, Aliyun's push names the call: the
notice is the one whose message went out under that CallId (or, when the push outruns our write of the
CallId, the outbox row named by OutId). Each call acknowledges at most once: VoiceCallReport (at the key
press) and VoiceReport (at the end) both carry the digits, and Aliyun repeats a push it thinks we missed;
the CallId is recorded under the same replay guard as Twilio's call sid, so only the first one acts.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select

from warning_service.acknowledgment.inbound import first_receipt, forget_receipt, phone_key
from warning_service.db import Database
from warning_service.delivery import push
from warning_service.delivery.models import DeliveryAttempt, OutboxMessage
from warning_service.errors import NotFound
from warning_service.logging import get_logger
from warning_service.notice.answer import NotAcknowledgeable, answer

log = get_logger(__name__)
ACK_KEY = "1"  # the key the IvrCall's menu binds to the confirmation (channels/voice_aliyun.py)


async def apply_aliyun_voice_push(db: Database, *, items: list[push.AliyunVoiceReport], now: datetime
                                  ) -> list[str]:
    """Key presses first, each in transactions of its own, then the receipts in one: a receipt marking the
    notice delivered must not hold the notice's row while an answer waits for it."""
    outcomes = [await acknowledge_by_key(db, report=r, now=now) for r in items]
    async with db.session() as session:
        await push.apply_aliyun_voice_reports(session, items=items, now=now)
    return outcomes


async def acknowledge_by_key(db: Database, *, report: push.AliyunVoiceReport, now: datetime) -> str:
    """'acknowledged', or why not: 'no_key', 'unknown_call', 'replayed', 'not_acknowledgeable'."""
    digits = (report.dtmf or "").strip()
    if ACK_KEY not in digits:
        # Only key 1 is bound in the call's menu; any other key leaves the notice open for the re-call.
        return "no_key"
    found = await _call_of(db, call_id=report.call_id, out_id=report.out_id)
    if found is None:
        log.warning("aliyun_voice_key_unknown_call", call_id=report.call_id, out_id=report.out_id)
        return "unknown_call"
    notice_id, called = found
    sid = f"aliyun:{report.call_id}"
    if not await first_receipt(db, sid=sid, kind="voice_key", now=now):
        return "replayed"
    try:
        # The number called answered, as Twilio's "Called" says (a key-press push may not name the callee).
        await answer(db, notice_id=notice_id, path="voice_key", now=now, raw_input=digits,
                     source=called or (phone_key(report.callee) if report.callee else None))
    except (NotAcknowledgeable, NotFound):
        # Lifted or closed meanwhile: the person heard the platform's confirmation, nothing is owed.
        return "not_acknowledgeable"
    except BaseException:
        await forget_receipt(db, sid=sid)  # Aliyun pushes again; let that one act
        raise
    return "acknowledged"


async def _call_of(db: Database, *, call_id: str, out_id: str | None) -> tuple[int, str] | None:
    """(notice, number called) of the voice message sent as `call_id`: every attempt keeps its CallId, the
    outbox row the latest one; OutId finds a row whose CallId is not written yet."""
    async with db.session() as session:
        row = (await session.execute(select(DeliveryAttempt.notice_id, DeliveryAttempt.address).where(
            DeliveryAttempt.provider_id == call_id, DeliveryAttempt.channel == "voice",
            DeliveryAttempt.notice_id.is_not(None)).limit(1))).first()
        if row is None:
            match = OutboxMessage.provider_id == call_id
            if out_id and out_id.isdigit():
                match = or_(match, and_(OutboxMessage.id == int(out_id), OutboxMessage.provider_id.is_(None)))
            row = (await session.execute(select(OutboxMessage.notice_id, OutboxMessage.address).where(
                match, OutboxMessage.channel == "voice", OutboxMessage.notice_id.is_not(None)).limit(1))).first()
        return (int(row[0]), row[1]) if row is not None else None
