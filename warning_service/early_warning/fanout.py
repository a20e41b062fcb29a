"""Notices and outbox rows, written set-based: one INSERT … SELECT per kind of row, however many people.

Every function works in the caller's transaction, so a warning's notices and the messages owed to them
commit (or vanish) together.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, and_, cast, exists, func, insert, literal, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.db import UTCDateTime
from warning_service.delivery.models import OPEN_NOTICE_STATES, Notice, OutboxMessage
from warning_service.early_warning.models import LEVEL_RANK, EarlyWarning
from warning_service.person.models import Person
from warning_service.region.models import Region, subtree_bounds

PERSON_CHANNELS = ("sms", "voice", "email")


def in_subtrees(path_col: Any, regions: list[Region]) -> Any:
    conds = []
    for r in regions:
        low, high = subtree_bounds(r.path)
        conds.append(and_(path_col >= low, path_col < high))
    return or_(*conds)


def recipient_conditions(regions: list[Region], roles: list[str]) -> list[Any]:
    """Who a warning reaches: active people with a reached role under the targets (Person joined to Region).

    The issue and its dry-run preview both select with exactly these conditions, so the preview's count
    is the issue's count.
    """
    return [Person.active.is_(True), Person.role.in_(roles), in_subtrees(Region.path, regions)]


async def create_notices(session: AsyncSession, *, warning: EarlyWarning, regions: list[Region], now: datetime,
                          roles: list[str]) -> tuple[int, int]:
    """One primary notice per active person with a reached role under the targets; returns (count, id_floor)."""
    policy = warning.policy
    ack = bool(policy["ack_required"])
    deadline = now + timedelta(seconds=float(policy["ack_deadline"])) if ack else None
    floor = (await session.execute(select(func.coalesce(func.max(Notice.id), 0)))).scalar_one()
    already = exists().where(Notice.warning_id == warning.id, Notice.person_id == Person.id,
                             Notice.reason == "primary")
    src = (
        select(
            literal(warning.id, Integer), Person.id, Person.role, Person.region_code, literal("primary"),
            literal("pending"), literal(ack), literal(warning.ack_round, Integer),
            literal(deadline, UTCDateTime), literal(deadline, UTCDateTime), literal(0, Integer),
            literal("initial"), literal(now, UTCDateTime),
        )
        .select_from(Person)
        .join(Region, Region.code == Person.region_code)
        .where(*recipient_conditions(regions, roles), ~already)
    )
    result = await session.execute(insert(Notice).from_select(
        ["warning_id", "person_id", "role", "region_code", "reason", "state", "requires_ack", "round", "deadline",
         "next_action_at", "attempt_count", "step", "created_at"], src))
    return result.rowcount or 0, floor


def _key(prefix: str, id_col: Any, kind: str, revision: int, channel: str) -> Any:
    return (literal(prefix) + cast(id_col, String) + literal(f":{kind}:r{revision}:{channel}"))


async def queue_person_messages(session: AsyncSession, *, warning: EarlyWarning, kind: str, channels: list[str],
                                now: datetime, notice_filter: Any) -> int:
    """Queue one message per channel for every notice matching `notice_filter` that has an address."""
    total = 0
    priority = LEVEL_RANK[warning.level]
    for channel in channels:
        if channel not in PERSON_CHANNELS:
            continue
        address = Person.email if channel == "email" else Person.phone
        src = (
            select(
                literal(warning.id, Integer), Notice.id, literal(warning.revision, Integer), literal(kind),
                literal(channel), address, literal(priority, Integer), literal("queued"), literal(0, Integer),
                literal(now, UTCDateTime), _key("n", Notice.id, kind, warning.revision, channel),
                literal(now, UTCDateTime), literal(now, UTCDateTime),
            )
            .select_from(Notice)
            .join(Person, Person.id == Notice.person_id)
            .where(Notice.warning_id == warning.id, notice_filter, address.is_not(None), address != "")
        )
        res = await session.execute(insert(OutboxMessage).from_select(
            ["warning_id", "notice_id", "revision", "kind", "channel", "address", "priority", "status", "attempts",
             "next_attempt_at", "idempotency_key", "created_at", "updated_at"], src))
        total += res.rowcount or 0
        if channel in ("sms", "voice"):
            # Nobody to call is a failure the duty officer must see, not a silent gap.
            nophone = (
                select(
                    literal(warning.id, Integer), Notice.id, literal(warning.revision, Integer), literal(kind),
                    literal(channel), literal(""), literal(priority, Integer), literal("failed"),
                    literal(0, Integer), literal(now, UTCDateTime),
                    _key("n", Notice.id, kind, warning.revision, channel), literal(now, UTCDateTime),
                    literal(now, UTCDateTime), literal("no_address"), literal("person has no phone number"),
                )
                .select_from(Notice).join(Person, Person.id == Notice.person_id)
                .where(Notice.warning_id == warning.id, notice_filter, or_(Person.phone.is_(None), Person.phone == ""))
            )
            await session.execute(insert(OutboxMessage).from_select(
                ["warning_id", "notice_id", "revision", "kind", "channel", "address", "priority", "status",
                 "attempts", "next_attempt_at", "idempotency_key", "created_at", "updated_at", "error_code",
                 "error_message"], nophone))
    return total


async def queue_broadcasts(session: AsyncSession, *, warning: EarlyWarning, kind: str, now: datetime,
                           regions: list[Region], only_reached: bool = False) -> int:
    """One loudspeaker message per village under the targets (or per village already played, for a lift)."""
    if "broadcast" not in warning.policy.get("channels", []) or not regions:
        return 0
    cond = and_(Region.level == "village", in_subtrees(Region.path, regions))
    if only_reached:
        played = exists().where(OutboxMessage.warning_id == warning.id, OutboxMessage.channel == "broadcast",
                                OutboxMessage.region_code == Region.code,
                                OutboxMessage.status.in_(("sending", "sent", "delivered")))
        cond = and_(cond, played)
    src = select(
        literal(warning.id, Integer), null(), literal(warning.revision, Integer), literal(kind),
        literal("broadcast"), Region.code, Region.code, literal(LEVEL_RANK[warning.level], Integer),
        literal("queued"), literal(0, Integer), literal(now, UTCDateTime),
        _key("b", Region.code, kind, warning.revision, "broadcast") + literal(f":w{warning.id}"),
        literal(now, UTCDateTime), literal(now, UTCDateTime),
    ).where(cond)
    res = await session.execute(insert(OutboxMessage).from_select(
        ["warning_id", "notice_id", "revision", "kind", "channel", "address", "region_code", "priority", "status",
         "attempts", "next_attempt_at", "idempotency_key", "created_at", "updated_at"], src))
    return res.rowcount or 0


async def cancel_queued(session: AsyncSession, *, warning_id: int, now: datetime, reason: str,
                         kinds: tuple[str, ...] | None = None, revision_below: int | None = None) -> int:
    stmt = update(OutboxMessage).where(OutboxMessage.warning_id == warning_id, OutboxMessage.status == "queued")
    if kinds:
        stmt = stmt.where(OutboxMessage.kind.in_(kinds))
    if revision_below is not None:
        stmt = stmt.where(OutboxMessage.revision < revision_below)
    res = await session.execute(stmt.values(status="cancelled", error_code=reason, updated_at=now))
    return res.rowcount or 0


async def close_open_notices(session: AsyncSession, *, warning_id: int, now: datetime, extra: Any = None) -> int:
    stmt = update(Notice).where(Notice.warning_id == warning_id, Notice.state.in_(OPEN_NOTICE_STATES))
    if extra is not None:
        stmt = stmt.where(extra)
    res = await session.execute(stmt.values(state="closed", next_action_at=None, closed_at=now, step="done"))
    return res.rowcount or 0
