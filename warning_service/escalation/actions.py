"""The sweep's writes: advance notices, open deputy/escalation notices, queue their messages — set-based."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, case, cast, func, literal, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.db import UTCDateTime, chunks, dialect_name
from warning_service.delivery.models import OPEN_NOTICE_STATES, Notice, OutboxMessage
from warning_service.early_warning.models import LEVEL_RANK, EarlyWarning
from warning_service.escalation.sqlutil import in_ids
from warning_service.person.models import Person

N, OUTBOX, P, W = Notice.__table__, OutboxMessage.__table__, Person.__table__, EarlyWarning.__table__
OUTBOX_COLUMNS = ["warning_id", "notice_id", "revision", "kind", "channel", "address", "priority", "status",
                  "attempts", "next_attempt_at", "idempotency_key", "created_at", "updated_at", "error_code",
                  "error_message"]
PART = 1000


def _insert(session: AsyncSession, table: Any) -> Any:
    if dialect_name(session) == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


async def set_values(session: AsyncSession, ids: Sequence[int], **values: Any) -> None:
    """UPDATE notice SET … WHERE id IN (ids), in parts."""
    for part in chunks(sorted(ids), PART):
        await session.execute(update(N).where(in_ids(session, N.c.id, part)).values(**values))


async def queue_messages(session: AsyncSession, *, notice_ids: Sequence[int], channel: str, recall: bool,
                         now: datetime) -> int:
    """One message on `channel` per notice, rendered at dispatch from the warning's current revision.

    A re-call of a primary notice is kind 'recall'; anything sent for a deputy or escalation notice keeps
    that notice's reason as its kind, so even the third call tells the town head whom they are chasing.
    The idempotency key names the round and the attempt: a replayed action cannot queue a second message.
    A person without a phone gets a failed row, so the gap shows instead of passing in silence.
    """
    no_phone = or_(P.c.phone.is_(None), P.c.phone == "")
    kind = case((N.c.reason == "primary", literal("recall")), else_=N.c.reason) if recall else N.c.reason
    tag = (literal(":a") + cast(N.c.attempt_count, String)) if recall else literal(":first")
    key = (literal("n") + cast(N.c.id, String) + literal(":") + kind + literal(":rd")
           + cast(N.c.round, String) + tag + literal(f":{channel}"))
    total = 0
    for part in chunks(sorted(notice_ids), PART):
        src = (
            select(
                N.c.warning_id, N.c.id, W.c.revision, kind, literal(channel), func.coalesce(P.c.phone, ""),
                case(LEVEL_RANK, value=W.c.level, else_=0),
                case((no_phone, literal("failed")), else_=literal("queued")), literal(0, Integer),
                literal(now, UTCDateTime), key, literal(now, UTCDateTime), literal(now, UTCDateTime),
                case((no_phone, literal("no_address"))),
                case((no_phone, literal("person has no phone number"))),
            )
            .select_from(N.join(P, P.c.id == N.c.person_id).join(W, W.c.id == N.c.warning_id))
            .where(in_ids(session, N.c.id, part))
        )
        stmt = (_insert(session, OUTBOX).from_select(OUTBOX_COLUMNS, src)
                .on_conflict_do_nothing(index_elements=["idempotency_key"]))
        total += (await session.execute(stmt)).rowcount or 0
    return total


async def open_notices(session: AsyncSession, rows: list[dict[str, Any]]) -> list[Any]:
    """Insert deputy/escalation notices; returns (id, escalation_of) of each opened.

    One (silent notice, person) pair has one notice row across rounds, as primary notices do: after an
    upgrade the closed row of the earlier round is reopened for the new one. Within a round the conflict
    is a no-op, so nothing is opened twice.
    """
    if not rows:
        return []
    stmt = _insert(session, N)
    ex = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=["escalation_of", "person_id"],
        set_={"state": ex.state, "round": ex.round, "reason": ex.reason, "role": ex.role,
              "region_code": ex.region_code, "root_id": ex.root_id, "requires_ack": ex.requires_ack,
              "deadline": ex.deadline, "next_action_at": ex.next_action_at, "attempt_count": ex.attempt_count,
              "step": ex.step, "delivered_at": null(), "acknowledged_at": null(), "closed_at": null()},
        where=N.c.round < ex.round,
    ).returning(N.c.id, N.c.escalation_of)
    # executemany: SQLAlchemy batches the rows into multi-row INSERTs ("insertmanyvalues") from one cached
    # compilation, RETURNING included — as long as the ON CONFLICT clause has no bound parameters.
    return list((await session.execute(stmt, rows)).all())


def notice_row(*, silent: Any, person_id: int, role: str, region_code: str, reason: str, deadline: datetime,
               next_action_at: datetime | None, now: datetime) -> dict[str, Any]:
    """Values of a deputy or escalation notice opened because `silent` did not answer."""
    return {"warning_id": silent.warning_id, "person_id": person_id, "role": role, "region_code": region_code,
            "reason": reason, "escalation_of": silent.id, "root_id": silent.root_id or silent.id,
            "state": "pending", "requires_ack": True, "round": silent.round, "deadline": deadline,
            "next_action_at": next_action_at, "attempt_count": 0, "step": "initial", "created_at": now}


async def time_out_roots(session: AsyncSession, ids: Sequence[int], *, round_: int) -> None:
    """Mark the primary notices of chains that reached the top 超时未叫应, if still open in that round."""
    for part in chunks(sorted(ids), PART):
        await session.execute(update(N).where(in_ids(session, N.c.id, part), N.c.round == round_,
                                              N.c.state.in_(OPEN_NOTICE_STATES))
                              .values(state="timed_out", next_action_at=None))


async def cancel_chase(session: AsyncSession, notice_ids: Sequence[int], *, now: datetime) -> int:
    """Cancel the still-queued re-calls, deputy calls and escalations of these notices."""
    total = 0
    for part in chunks(sorted(notice_ids), PART):
        res = await session.execute(update(OUTBOX).where(
            in_ids(session, OUTBOX.c.notice_id, part), OUTBOX.c.status == "queued",
            OUTBOX.c.kind.in_(("recall", "deputy", "escalation"))).values(
            status="cancelled", error_code="acknowledged", updated_at=now))
        total += res.rowcount or 0
    return total
