"""The sweep's messages: one re-call or deputy call per notice, one escalation per digest, queued set-based."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, case, cast, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.db import UTCDateTime
from warning_service.delivery.models import MessageKind, OutboxMessage
from warning_service.dialect import chunks, in_ids, insert
from warning_service.early_warning.models import LEVEL_RANK, EarlyWarning
from warning_service.notice.models import ROOT_REASONS, Notice
from warning_service.person.models import Person

N, OUTBOX, P, W = Notice.__table__, OutboxMessage.__table__, Person.__table__, EarlyWarning.__table__
OUTBOX_COLUMNS = ["warning_id", "notice_id", "digest_id", "revision", "kind", "channel", "address", "priority",
                  "status", "attempts", "next_attempt_at", "idempotency_key", "created_at", "updated_at", "error_code",
                  "error_message"]
PART = 1000


async def queue_messages(session: AsyncSession, *, notice_ids: Sequence[int], channel: str, recall: bool,
                         now: datetime) -> int:
    """One message on `channel` per notice, rendered at dispatch from the warning's current revision.

    A re-call of a primary notice is kind 'recall'; anything sent for a deputy or escalation notice keeps
    that notice's reason as its kind, so even the third call tells the town head whom they are chasing.
    The idempotency key names the round and the attempt: a replayed action cannot queue a second message.
    A notice in a digest stands for the whole digest (pass one per digest, `representatives`): the key
    names the digest, so a digest split over two batches still gets one message per attempt.
    A person without a phone gets a failed row, so the gap shows instead of passing in silence.
    """
    no_phone = or_(P.c.phone.is_(None), P.c.phone == "")
    kind = N.c.reason
    if recall:
        # A task or a special notice is re-called like a primary one (its text names the household or place).
        kind = case((N.c.reason.in_(ROOT_REASONS), literal(MessageKind.recall.value)), else_=N.c.reason)
    tag = (literal(":a") + cast(N.c.attempt_count, String)) if recall else literal(":first")
    owner = case((N.c.digest_id.is_not(None), literal("d") + cast(N.c.digest_id, String)),
                 else_=literal("n") + cast(N.c.id, String))
    key = (owner + literal(":") + kind + literal(":rd")
           + cast(N.c.round, String) + tag + literal(f":{channel}"))
    total = 0
    for part in chunks(sorted(notice_ids), PART):
        src = (
            select(
                N.c.warning_id, N.c.id, N.c.digest_id, W.c.revision, kind, literal(channel),
                func.coalesce(P.c.phone, ""),
                case(LEVEL_RANK, value=W.c.level, else_=0),
                case((no_phone, literal("failed")), else_=literal("queued")), literal(0, Integer),
                literal(now, UTCDateTime), key, literal(now, UTCDateTime), literal(now, UTCDateTime),
                case((no_phone, literal("no_address"))),
                case((no_phone, literal("person has no phone number"))),
            )
            .select_from(N.join(P, P.c.id == N.c.person_id).join(W, W.c.id == N.c.warning_id))
            .where(in_ids(session, N.c.id, part))
        )
        stmt = (insert(session, OUTBOX).from_select(OUTBOX_COLUMNS, src)
                .on_conflict_do_nothing(index_elements=["idempotency_key"]))
        total += (await session.execute(stmt)).rowcount or 0
    return total


def representatives(rows: Sequence[Any]) -> list[int]:
    """The notices to queue messages for: each one outside a digest, and the first of each digest."""
    first: dict[int, int] = {}
    alone: list[int] = []
    for r in rows:
        if r.digest_id is None:
            alone.append(r.id)
        else:
            first[r.digest_id] = min(first.get(r.digest_id, r.id), r.id)
    return alone + list(first.values())
