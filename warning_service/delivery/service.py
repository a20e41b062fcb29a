"""Delivery receipts, the delivery log of a notice, and per-warning delivery progress."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.config import Settings
from warning_service.delivery.adapters import adapter_names
from warning_service.delivery.models import STATUS_RANK, DeliveryAttempt, OutboxMessage, OutboxStatus
from warning_service.delivery.ratelimit import bucket_for
from warning_service.logging import get_logger
from warning_service.notice import service as notices
from warning_service.notice.models import Notice

log = get_logger(__name__)
OUTBOX_STATUSES = [s.value for s in OutboxStatus]

# Twilio's words → ours. Anything Twilio accepted counts as "sent"; only a handset receipt is "delivered".
SMS_STATUS = {"accepted": "sent", "scheduled": "sent", "queued": "sent", "sending": "sent", "sent": "sent",
              "delivered": "delivered", "read": "delivered", "undelivered": "undelivered", "failed": "failed",
              # Part of a long message missing may be exactly the part with the link: not "delivered".
              "partially_delivered": "undelivered", "canceled": "cancelled"}
# A call is "delivered" when someone picked up and it ran to the end; busy / no answer is not delivered.
CALL_STATUS = {"queued": "sent", "initiated": "sent", "ringing": "sent", "in-progress": "sent",
               "answered": "sent", "completed": "delivered", "busy": "undelivered",
               "no-answer": "undelivered", "failed": "undelivered", "canceled": "undelivered"}


# --- receipts -----------------------------------------------------------------------------------------------

async def apply_receipt(session: AsyncSession, *, form: dict[str, str], outbox_hint: str | None,
                        now: datetime) -> str:
    """Apply one Twilio status callback; idempotent and monotonic. Returns what happened (for logs/tests)."""
    sid = form.get("MessageSid") or form.get("SmsSid") or form.get("CallSid")
    raw = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    mapping = SMS_STATUS
    if not raw and form.get("CallStatus"):
        raw, mapping = form["CallStatus"].lower(), CALL_STATUS
    new = mapping.get(raw)
    if not sid or new is None:
        log.info("twilio_receipt_ignored", sid=sid, status=raw)
        return "ignored"
    error = form.get("ErrorCode") or None
    return await record_receipt(session, provider_id=sid, status=new, raw=raw,
                                error_code=f"twilio_{error}" if error else None, outbox_hint=outbox_hint, now=now)


async def record_receipt(session: AsyncSession, *, provider_id: str, status: str, raw: str,
                         error_code: str | None, now: datetime, outbox_hint: str | None = None) -> str:
    """Apply one provider receipt in our words (sent / delivered / undelivered / failed …), whichever provider
    sent it; idempotent and monotonic (a late "sent" never undoes "delivered")."""
    sid, new = provider_id, status
    lower = [s for s, rank in STATUS_RANK.items() if rank < STATUS_RANK[new]]
    match = OutboxMessage.provider_id == sid
    if outbox_hint and outbox_hint.isdigit():
        # The callback URL names the row, so a receipt that outruns our write of the sid still lands.
        match = or_(match, and_(OutboxMessage.id == int(outbox_hint), OutboxMessage.provider_id.is_(None)))
    values: dict[str, Any] = {"status": new, "provider_id": sid, "updated_at": now}
    if new == "delivered":
        values["delivered_at"] = func.coalesce(OutboxMessage.delivered_at, now)
    if new in ("undelivered", "failed") and error_code:
        values.update(error_code=error_code, error_message=f"provider reported {raw}")
    hit = (await session.execute(update(OutboxMessage).where(match, OutboxMessage.status.in_(lower))
                                 .values(**values).returning(OutboxMessage.id, OutboxMessage.notice_id,
                                                             OutboxMessage.warning_id, OutboxMessage.channel))
           ).first()
    receipt = {"receipt_status": new, "receipt_error_code": error_code, "receipt_at": now}
    updated = (await session.execute(update(DeliveryAttempt).where(
        DeliveryAttempt.provider_id == sid,
        or_(DeliveryAttempt.receipt_status.is_(None), DeliveryAttempt.receipt_status.in_(lower)),
    ).values(**receipt))).rowcount
    if hit is None:
        known = (await session.execute(select(OutboxMessage.id, OutboxMessage.status).where(
            OutboxMessage.provider_id == sid))).first()
        if known is None:
            log.info("receipt_unknown_sid", sid=sid, status=raw)
            return "unknown"
        log.info("receipt_stale", sid=sid, status=raw, outbox_id=known.id, current=known.status)
        return "stale"
    if not updated:
        # No attempt row carries this sid yet (the dispatcher's write is still coming, or our side timed out
        # while the provider went ahead): keep the receipt as a row of its own.
        await session.execute(insert(DeliveryAttempt).values(
            outbox_id=hit.id, notice_id=hit.notice_id, channel=hit.channel, adapter="receipt", address="",
            status=new, provider_id=sid, error_code=error_code, retryable=False, started_at=now,
            finished_at=now, **receipt))
    if new == "delivered" and hit.notice_id:
        await notices.mark_delivered(session, [hit.notice_id], now=now)
    log.info("receipt", sid=sid, status=raw, outbox_id=hit.id, warning_id=hit.warning_id,
             notice_id=hit.notice_id, channel=hit.channel, error_code=error_code)
    return new


# --- delivery log of a notice ----------------------------------------------------------------------

class MessagePublic(BaseModel):
    id: int
    kind: str
    channel: str
    address: str
    status: str
    attempts: int
    revision: int
    next_attempt_at: datetime | None
    provider_id: str | None
    error_code: str | None
    error_message: str | None
    segments: int | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None


class AttemptPublic(BaseModel):
    id: int
    outbox_id: int
    channel: str
    adapter: str
    address: str
    status: str
    provider_id: str | None
    error_code: str | None
    error_message: str | None
    retryable: bool
    started_at: datetime
    finished_at: datetime | None
    receipt_status: str | None
    receipt_error_code: str | None
    receipt_at: datetime | None


class NoticeDeliveryLog(BaseModel):
    notice_id: int
    warning_id: int
    state: str
    delivered_at: datetime | None
    messages: list[MessagePublic]
    attempts: list[AttemptPublic]


async def notice_delivery_log(session: AsyncSession, *, notice: Notice) -> NoticeDeliveryLog:
    """Every message queued for a notice and every attempt at it, oldest first."""
    notice_id = notice.id
    messages = (await session.execute(select(OutboxMessage).where(OutboxMessage.notice_id == notice_id)
                                      .order_by(OutboxMessage.id))).scalars().all()
    attempts = (await session.execute(select(DeliveryAttempt).where(
        DeliveryAttempt.outbox_id.in_([m.id for m in messages]) if messages else DeliveryAttempt.id < 0)
        .order_by(DeliveryAttempt.started_at, DeliveryAttempt.id))).scalars().all()
    return NoticeDeliveryLog(
        notice_id=notice_id, warning_id=notice.warning_id, state=notice.state,
        delivered_at=notice.delivered_at,
        messages=[MessagePublic.model_validate(m, from_attributes=True) for m in messages],
        attempts=[AttemptPublic.model_validate(a, from_attributes=True) for a in attempts])


# --- progress of a warning ----------------------------------------------------------------------------------

async def warning_delivery_stats(session: AsyncSession, *, warning_id: int, settings: Settings
                                 ) -> dict[str, Any]:
    """Messages of a warning by channel and status, and an estimate of the seconds until the queue is through.

    The estimate counts this warning's unsent messages plus those of other warnings ahead of it in the queue
    (higher priority, or same priority and older), divided by the configured rate of each bucket.
    """
    rows = (await session.execute(select(OutboxMessage.channel, OutboxMessage.status, func.count())
                                  .where(OutboxMessage.warning_id == warning_id)
                                  .group_by(OutboxMessage.channel, OutboxMessage.status))).all()
    by_channel: dict[str, dict[str, int]] = {}
    total = dict.fromkeys(OUTBOX_STATUSES, 0)
    for channel, status, n in rows:
        counts = by_channel.setdefault(channel, dict.fromkeys(OUTBOX_STATUSES, 0))
        counts[status] = counts.get(status, 0) + n
        total[status] = total.get(status, 0) + n
    remaining = {ch: c["queued"] + c["sending"] for ch, c in by_channel.items()}
    eta = 0.0
    if any(remaining.values()):
        priority = (await session.execute(select(func.max(OutboxMessage.priority)).where(
            OutboxMessage.warning_id == warning_id, OutboxMessage.status.in_(("queued", "sending"))))
        ).scalar() or 0
        ahead = dict((await session.execute(select(OutboxMessage.channel, func.count()).where(
            OutboxMessage.status.in_(("queued", "sending")), OutboxMessage.warning_id != warning_id,
            or_(OutboxMessage.priority > priority,
                and_(OutboxMessage.priority == priority, OutboxMessage.warning_id < warning_id)))
            .group_by(OutboxMessage.channel))).all())
        eta = estimate_seconds({ch: remaining.get(ch, 0) + ahead.get(ch, 0) for ch in remaining
                                if remaining.get(ch)}, settings)
    return {"by_channel": by_channel, "total": total, "remaining": sum(remaining.values()),
            "eta_seconds": round(eta, 1)}


def estimate_seconds(backlog: dict[str, int], settings: Settings) -> float:
    """Seconds to send `backlog` (channel → messages) at the configured rates; buckets run in parallel."""
    names = adapter_names(settings)
    limits = settings.rate_limits()
    per_bucket: dict[str, float] = {}
    for channel, n in backlog.items():
        bucket = bucket_for(channel, names.get(channel, "console"), limits)
        if bucket is None:
            continue  # unpaced: as fast as the provider answers, which the estimate cannot know
        key, rate = bucket
        per_bucket[key] = per_bucket.get(key, 0.0) + n / rate
    return max(per_bucket.values(), default=0.0)
