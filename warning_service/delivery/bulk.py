"""Bulk writes of a batch's results: one statement over arrays on PostgreSQL, executemany elsewhere.

PostgreSQL takes the whole batch in one round trip (COPY for the attempts, `unnest` arrays for the status
update), which is what lets one worker record many thousand results a second; SQLite, in-process, is fine
with executemany.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import String, and_, bindparam, case, func, insert, literal_column, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.db import UTCDateTime
from warning_service.delivery.models import DeliveryAttempt, OutboxMessage
from warning_service.dialect import is_postgresql

OUTBOX = OutboxMessage.__table__
ATTEMPT = DeliveryAttempt.__table__
QUEUED, SENDING = literal_column("'queued'"), literal_column("'sending'")
ATTEMPT_COLUMNS = ("outbox_id", "notice_id", "channel", "adapter", "address", "status", "provider_id",
                   "error_code", "error_message", "retryable", "started_at", "finished_at")
# A receipt may have arrived first (its callback URL names the row): never move a status back. The attempt
# count must still be ours — a row reclaimed and claimed again by another worker is theirs now.
_SUCCESS_STATUS = """CASE WHEN o.status IN ('queued', 'sending') THEN v.status
                          WHEN o.status = 'sent' AND v.status = 'delivered' THEN 'delivered'
                          ELSE o.status END"""
_PG_SUCCESS = text(f"""
UPDATE outbox AS o SET status = {_SUCCESS_STATUS}, provider_id = v.provider_id, segments = v.segments,
       sent_at = v.at, delivered_at = COALESCE(o.delivered_at, v.delivered_at), lease_until = NULL,
       claimed_by = NULL,
       error_code = NULL, error_message = NULL, updated_at = v.at
FROM unnest(CAST(:ids AS int[]), CAST(:attempts AS int[]), CAST(:statuses AS text[]), CAST(:providers AS text[]),
            CAST(:segments AS int[]), CAST(:ats AS timestamptz[]), CAST(:delivered AS timestamptz[]))
     AS v(id, attempts, status, provider_id, segments, at, delivered_at)
WHERE o.id = v.id AND o.attempts = v.attempts""")

_AT = bindparam("b_at", type_=UTCDateTime())
_SUCCESS = (
    update(OUTBOX)
    .where(OUTBOX.c.id == bindparam("b_id"), OUTBOX.c.attempts == bindparam("b_attempts"))
    .values(
        status=case((OUTBOX.c.status.in_((QUEUED, SENDING)), bindparam("b_status", type_=String())),
                    (and_(OUTBOX.c.status == literal_column("'sent'"),
                          bindparam("b_status", type_=String()) == literal_column("'delivered'")),
                     literal_column("'delivered'")),
                    else_=OUTBOX.c.status),
        provider_id=bindparam("b_provider"), segments=bindparam("b_segments"), sent_at=_AT,
        delivered_at=func.coalesce(OUTBOX.c.delivered_at, bindparam("b_delivered_at", type_=UTCDateTime())),
        lease_until=None, claimed_by=None, error_code=None, error_message=None, updated_at=_AT,
    )
)
FAILURE = (
    update(OUTBOX)
    .where(OUTBOX.c.id == bindparam("b_id"), OUTBOX.c.attempts == bindparam("b_attempts"),
           OUTBOX.c.status == SENDING)
    .values(status=bindparam("b_status"), next_attempt_at=bindparam("b_next", type_=UTCDateTime()),
            error_code=bindparam("b_code"), error_message=bindparam("b_message"), lease_until=None,
            claimed_by=None, updated_at=_AT)
)
DEFERRED = (
    update(OUTBOX)
    .where(OUTBOX.c.id == bindparam("b_id"), OUTBOX.c.attempts == bindparam("b_attempts"),
           OUTBOX.c.status == SENDING)
    .values(status=QUEUED, attempts=OUTBOX.c.attempts - 1, lease_until=None, claimed_by=None,
            next_attempt_at=_AT, updated_at=_AT)
)


async def insert_attempts(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    if is_postgresql(session):
        # COPY inside the session's transaction: the cheapest way PostgreSQL takes thousands of rows.
        conn = await session.connection()
        raw = await conn.get_raw_connection()
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            "delivery_attempt", columns=ATTEMPT_COLUMNS,
            records=[tuple(r[c] for c in ATTEMPT_COLUMNS) for r in rows])
    else:
        await session.execute(insert(ATTEMPT), list(rows))


async def mark_sent(session: AsyncSession, params: Sequence[dict[str, Any]]) -> None:
    """Sent / delivered results (dicts with b_id, b_attempts, b_status, b_provider, b_segments, b_at,
    b_delivered_at)."""
    if not params:
        return
    if is_postgresql(session):
        await session.execute(_PG_SUCCESS, {
            "ids": [p["b_id"] for p in params], "attempts": [p["b_attempts"] for p in params],
            "statuses": [p["b_status"] for p in params], "providers": [p["b_provider"] for p in params],
            "segments": [p["b_segments"] for p in params], "ats": [p["b_at"] for p in params],
            "delivered": [p["b_delivered_at"] for p in params]})
    else:
        await session.execute(_SUCCESS, list(params))
