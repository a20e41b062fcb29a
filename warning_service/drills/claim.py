"""Claiming due runs so that exactly one worker issues each, however many workers tick at once.

PostgreSQL: `SELECT … FOR UPDATE SKIP LOCKED` on the `ix_drill_due` partial index: a second worker skips the
row the first holds and, once the first commits, no longer sees it as scheduled. SQLite has one writer: the
claim is an UPDATE, so the write lock is taken before anything is read (as notice/claim.py does).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.dialect import is_postgresql
from warning_service.drills.models import Drill, DrillState

D = Drill.__table__


async def claim_due(session: AsyncSession, *, now: datetime, limit: int) -> list[int]:
    """Lock up to `limit` scheduled runs that are due, oldest first; other workers skip them."""
    due = (D.c.state == DrillState.scheduled, D.c.due_at <= now)
    if is_postgresql(session):
        stmt = select(D.c.id).where(*due).order_by(D.c.due_at, D.c.id).limit(limit).with_for_update(skip_locked=True)
        return list((await session.execute(stmt)).scalars())
    ids = select(D.c.id).where(*due).order_by(D.c.due_at, D.c.id).limit(limit).scalar_subquery()
    stmt = update(D).where(D.c.id.in_(ids)).values(state=D.c.state).returning(D.c.id, D.c.due_at)
    return [r.id for r in sorted((await session.execute(stmt)).all(), key=lambda r: (r.due_at, r.id))]


async def change_scheduled(session: AsyncSession, *, drill_id: int, values: dict) -> bool:
    """Change a run only while it is still scheduled: one compare-and-set, so a cancel or an edit racing the
    worker either lands before the claim or finds the run issued (PostgreSQL waits for the worker's commit,
    then re-reads the state)."""
    stmt = (update(D).where(D.c.id == drill_id, D.c.state == DrillState.scheduled).values(**values)
            .returning(D.c.id))
    return (await session.execute(stmt)).first() is not None
