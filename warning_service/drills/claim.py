"""Claiming due runs so that exactly one worker issues each, however many workers tick at once.

PostgreSQL: `SELECT … FOR UPDATE SKIP LOCKED` on the `ix_drill_due` partial index: a second worker skips the
row the first holds and, once the first commits, no longer sees it as scheduled. SQLite has one writer: the
claim is an UPDATE, so the write lock is taken before anything is read (as notice/claim.py does).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.dialect import is_postgresql
from warning_service.drills.models import Drill, DrillState

D = Drill.__table__


async def _claim(session: AsyncSession, *, where: tuple[Any, ...], order: Any, limit: int) -> list[int]:
    if is_postgresql(session):
        stmt = select(D.c.id).where(*where).order_by(order, D.c.id).limit(limit).with_for_update(skip_locked=True)
        return list((await session.execute(stmt)).scalars())
    ids = select(D.c.id).where(*where).order_by(order, D.c.id).limit(limit).scalar_subquery()
    stmt = update(D).where(D.c.id.in_(ids)).values(state=D.c.state).returning(D.c.id, order)
    return [r[0] for r in sorted((await session.execute(stmt)).all(), key=lambda r: (r[1], r[0]))]


async def claim_due(session: AsyncSession, *, now: datetime, limit: int) -> list[int]:
    """Lock up to `limit` scheduled runs that are due, oldest first; other workers skip them."""
    return await _claim(session, where=(D.c.state == DrillState.scheduled, D.c.due_at <= now), order=D.c.due_at,
                        limit=limit)


async def claim_notices(session: AsyncSession, *, now: datetime, limit: int) -> list[int]:
    """Lock up to `limit` announced runs whose 演练预告 is due and not yet sent."""
    return await _claim(session, where=(D.c.state == DrillState.scheduled, D.c.notice_at.is_not(None),
                                        D.c.notice_at <= now, D.c.notice_warning_id.is_(None)),
                        order=D.c.notice_at, limit=limit)


async def change_scheduled(session: AsyncSession, *, drill_id: int, values: dict) -> bool:
    """Change a run only while it is still scheduled: one compare-and-set, so a cancel or an edit racing the
    worker either lands before the claim or finds the run issued (PostgreSQL waits for the worker's commit,
    then re-reads the state)."""
    stmt = (update(D).where(D.c.id == drill_id, D.c.state == DrillState.scheduled).values(**values)
            .returning(D.c.id))
    return (await session.execute(stmt)).first() is not None
