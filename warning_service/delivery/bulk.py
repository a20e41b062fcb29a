"""Bulk writes of a batch's results: one statement over arrays on PostgreSQL, executemany elsewhere.

PostgreSQL takes the whole batch in one round trip (COPY for the attempts, `unnest` arrays for the status
update), which is what lets one worker record many thousand results a second; SQLite, in-process, is fine
with executemany.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, bindparam, case, func, insert, literal_column, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.db import Database, UTCDateTime
from warning_service.delivery.models import DeliveryAttempt, OutboxMessage
from warning_service.dialect import is_postgresql
from warning_service.notice import service as notices

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



@dataclass
class Results:
    """What one write records, worked out from a batch of outcomes (store.results)."""

    totals: dict[str, int]
    attempts: list[dict[str, Any]] = field(default_factory=list)  # delivery_attempt rows
    success: list[dict[str, Any]] = field(default_factory=list)  # mark_sent's parameters
    failure: list[dict[str, Any]] = field(default_factory=list)  # FAILURE's
    deferred: list[dict[str, Any]] = field(default_factory=list)  # DEFERRED's
    delivered_notices: list[int] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)  # ledger.append_many's rows

# A batch's results as ONE autocommit statement (PostgreSQL, raw pool): in a session the write cost the worker
# ~3 ms of CPU whatever the batch (the pool's ping, BEGIN, COPY's look-up of the column types, five statements,
# COMMIT) — with the ~80 results a group commit gathers at 200 ms provider latency, more than rendering them.
# What each part does is what the session's statements do (bulk.py above, notice.mark_delivered,
# ledger.append_many); `record_alone` gives each row at most one of the three outbox updates, as their order
# in the session did, since one statement cannot update a row twice.
_PG_RECORD = f"""
WITH attempt AS (
  INSERT INTO delivery_attempt ({", ".join(ATTEMPT_COLUMNS)})
  SELECT * FROM unnest($1::int[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::text[], $9::text[], $10::bool[], $11::timestamptz[], $12::timestamptz[])
), sent AS (
  UPDATE outbox AS o SET status = {_SUCCESS_STATUS}, provider_id = v.provider_id, segments = v.segments,
         sent_at = v.at, delivered_at = COALESCE(o.delivered_at, v.delivered_at), lease_until = NULL,
         claimed_by = NULL, error_code = NULL, error_message = NULL, updated_at = v.at
  FROM unnest($13::int[], $14::int[], $15::text[], $16::text[], $17::int[], $18::timestamptz[],
              $19::timestamptz[]) AS v(id, attempts, status, provider_id, segments, at, delivered_at)
  WHERE o.id = v.id AND o.attempts = v.attempts
), failure AS (
  UPDATE outbox AS o SET status = v.status, next_attempt_at = v.next, error_code = v.code, error_message = v.message,
         lease_until = NULL, claimed_by = NULL, updated_at = v.at
  FROM unnest($20::int[], $21::int[], $22::text[], $23::timestamptz[], $24::text[], $25::text[],
              $26::timestamptz[]) AS v(id, attempts, status, next, code, message, at)
  WHERE o.id = v.id AND o.attempts = v.attempts AND o.status = 'sending'
), deferred AS (
  UPDATE outbox AS o SET status = 'queued', attempts = o.attempts - 1, lease_until = NULL, claimed_by = NULL,
         next_attempt_at = v.at, updated_at = v.at
  FROM unnest($27::int[], $28::int[], $29::timestamptz[]) AS v(id, attempts, at)
  WHERE o.id = v.id AND o.attempts = v.attempts AND o.status = 'sending'
), delivered AS (
  {notices.mark_delivered_sql(now="$30", ids="$31::int[]")}
), ledger AS (
  INSERT INTO ledger_pending (at, actor, action, subject_type, subject_id, details)
  SELECT at, actor, action, subject_type, subject_id, CAST(details AS json)
  FROM unnest($32::timestamptz[], $33::text[], $34::text[], $35::text[], $36::text[], $37::text[])
       AS l(at, actor, action, subject_type, subject_id, details)
)
SELECT 1"""


def _once(results: Results) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Success, failure and deferred parameters with each (row, attempt) once: in the session the first
    statement to match a row moved it out of 'sending' (success first, then failures, then hand-backs)."""
    seen: set[tuple[int, int]] = set()
    kept: list[list[dict[str, Any]]] = []
    for params in (results.success, results.failure, results.deferred):
        keep = []
        for p in params:
            key = (p["b_id"], p["b_attempts"])
            if key not in seen:
                seen.add(key)
                keep.append(p)
        kept.append(keep)
    return kept[0], kept[1], kept[2]


async def record_alone(db: Database, results: Results, *, now: datetime) -> None:
    """`store.record`'s writes as one autocommit statement on the raw pool (PostgreSQL)."""
    a = results.attempts
    success, failure, deferred = _once(results)
    entries = results.ledger
    args = [
        *([r[c] for r in a] for c in ATTEMPT_COLUMNS),
        *([p[k] for p in success] for k in ("b_id", "b_attempts", "b_status", "b_provider", "b_segments", "b_at",
                                            "b_delivered_at")),
        *([p[k] for p in failure] for k in ("b_id", "b_attempts", "b_status", "b_next", "b_code", "b_message",
                                            "b_at")),
        *([p[k] for p in deferred] for k in ("b_id", "b_attempts", "b_at")),
        now, sorted(set(results.delivered_notices)),  # notices.mark_delivered
        [e["at"] for e in entries], [e["actor"] for e in entries], [e["action"] for e in entries],
        [e["subject_type"] for e in entries], [str(e["subject_id"]) for e in entries],
        # what the JSON column's bind does in a session (json.dumps)
        [json.dumps(e.get("details") or {}) for e in entries],
    ]
    pool = await db.raw_pool()
    async with pool.acquire() as conn:
        await conn.execute(_PG_RECORD, *args)
