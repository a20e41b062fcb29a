"""Claiming due notices so that exactly one worker acts on each, and the warnings they belong to.

PostgreSQL: `SELECT … FOR NO KEY UPDATE SKIP LOCKED` on the `ix_notice_due` partial index, so two workers
split the due set between them; rows an acknowledgment or a lift is writing are skipped, and rows they
committed meanwhile are re-read in their new state. NO KEY UPDATE (rather than UPDATE) still excludes every
other writer of the notice but lets inserts that merely reference it (outbox rows, acknowledgments) through.
SQLite has one writer: the claim is an UPDATE, so the write lock is taken before anything is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.dialect import chunks, in_ids, is_postgresql
from warning_service.early_warning.models import EarlyWarning
from warning_service.notice.models import Notice

N = Notice.__table__
W = EarlyWarning.__table__
CLAIMED_COLUMNS = (N.c.id, N.c.warning_id, N.c.person_id, N.c.role, N.c.region_code, N.c.reason,
                   N.c.escalation_of, N.c.root_id, N.c.state, N.c.requires_ack, N.c.round, N.c.attempt_count,
                   N.c.step, N.c.next_action_at, N.c.digest_id)


def _due(now: datetime) -> tuple[Any, ...]:
    # Both terms match the partial index's predicate, on both databases.
    return (N.c.next_action_at.is_not(None), N.c.next_action_at <= now)


async def claim(session: AsyncSession, *, now: datetime, batch_size: int) -> list[Any]:
    """Lock up to `batch_size` notices whose next action is due, oldest first; other workers skip them."""
    if is_postgresql(session):
        stmt = (select(*CLAIMED_COLUMNS).where(*_due(now)).order_by(N.c.next_action_at).limit(batch_size)
                .with_for_update(of=N, skip_locked=True, key_share=True))
        return list((await session.execute(stmt)).all())
    due = select(N.c.id).where(*_due(now)).order_by(N.c.next_action_at).limit(batch_size)
    stmt = (update(N).where(N.c.id.in_(due.scalar_subquery()))
            .values(next_action_at=N.c.next_action_at).returning(*CLAIMED_COLUMNS))
    rows = list((await session.execute(stmt)).all())
    rows.sort(key=lambda r: (r.next_action_at, r.id))
    return rows


async def lock_warnings(session: AsyncSession, ids: Iterable[int]) -> dict[int, Any]:
    """The claimed notices' warnings, share-locked so no lift, upgrade or expiry commits under this sweep.

    A warning that one of those holds is left out: its notices are skipped this time, and the lift or
    upgrade, waiting for our notice locks, then sees everything this sweep wrote.
    """
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    cols = (W.c.id, W.c.state, W.c.level, W.c.revision, W.c.policy)
    out: dict[int, Any] = {}
    pg = is_postgresql(session)
    for part in chunks(wanted, 1000):
        stmt = select(*cols).where(in_ids(session, W.c.id, part))
        if pg:
            stmt = stmt.with_for_update(read=True, skip_locked=True)
        out.update({r.id: r for r in (await session.execute(stmt)).all()})
    return out


async def lock_roots(session: AsyncSession, ids: Sequence[int]) -> set[int]:
    """Lock the primary notices a timed-out chain must mark, skipping any another transaction holds.

    Never waiting here is what keeps a sweep from deadlocking with an acknowledgment that holds the
    primary notice and wants the escalation notice this sweep holds.
    """
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    if not is_postgresql(session):
        return set(wanted)
    got: set[int] = set()
    for part in chunks(wanted, 1000):
        stmt = (select(N.c.id).where(in_ids(session, N.c.id, part)).order_by(N.c.id)
                .with_for_update(skip_locked=True, key_share=True))
        got.update((await session.execute(stmt)).scalars())
    return got
