"""PostgreSQL: a primary notice's first answer in one statement (one round trip instead of six).

During a province-wide warning tens of thousands of people answer within minutes, mostly by tapping the
link or replying 1 to their only open notice. This statement does for that common case exactly what
`service.acknowledge` does step by step — the INSERT … ON CONFLICT (notice_id, round) DO NOTHING still
decides who wins, and everything else happens only for the winner:

  n          the notice, if it is a primary notice that can still be answered
  ins        the acknowledgment row (the arbiter)
  upd        the notice → acknowledged, nothing more to do — unless a lift, a new round or an escalation
             sweep changed it meanwhile
  chain      its open deputy/escalation notices → closed, timed-out ones no longer chased
  cancelled  queued re-calls, deputy calls and escalations of all of them → cancelled
  led        the "ack.recorded" ledger entry

Anything else (no row inserted: a second answer, a refused notice, a deputy/escalation notice whose chain
root must be locked first) falls back to the general path, which works out why.

Two ways to run it: inside the caller's session (`try_acknowledge`), or alone as one autocommit statement
on a small asyncpg pool kept beside the engine's (`acknowledge_alone`, the link's and SMS reply's hot
path: one round trip, no session, no pre-ping). Alone, it rolls itself back when it loses a race.
"""

from __future__ import annotations

import asyncio
import re
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.db import Database, UTCDateTime

_SQL_TEXT = """
WITH n AS (
    SELECT n.id, n.round, n.warning_id, n.person_id, n.deadline, n.step, n.attempt_count, n.next_action_at
    FROM notice n JOIN early_warning w ON w.id = n.warning_id
    WHERE n.id = :notice_id AND n.reason = 'primary' AND n.state IN ('pending', 'delivered', 'timed_out')
      AND w.state = 'active'
), ins AS (
    INSERT INTO acknowledgment (notice_id, round, warning_id, person_id, path, acknowledged_at, late,
                                raw_input, source, proxy_method, note, actor_user_id)
    SELECT n.id, n.round, n.warning_id, n.person_id, CAST(:path AS varchar), :now,
           COALESCE(n.deadline < :now, false), CAST(:raw_input AS varchar), CAST(:source AS varchar),
           CAST(:proxy_method AS varchar), CAST(:note AS varchar), CAST(:actor_user_id AS integer)
    FROM n
    ON CONFLICT (notice_id, round) DO NOTHING
    RETURNING id, round, late, warning_id, person_id
), upd AS (
    -- Unchanged since `n` read it: had a sweep advanced the notice while this waited for its lock, it may
    -- have opened chain notices this statement's snapshot cannot see; the general path then looks afresh.
    UPDATE notice SET state = 'acknowledged', acknowledged_at = :now, next_action_at = NULL, step = 'done'
    FROM ins, n
    WHERE notice.id = :notice_id AND notice.round = ins.round
      AND notice.state IN ('pending', 'delivered', 'timed_out')
      AND notice.step = n.step AND notice.attempt_count = n.attempt_count
      AND notice.next_action_at IS NOT DISTINCT FROM n.next_action_at
    RETURNING notice.id
), chain AS (
    UPDATE notice
    SET state = CASE WHEN notice.state IN ('pending', 'delivered') THEN 'closed' ELSE notice.state END,
        closed_at = CASE WHEN notice.state IN ('pending', 'delivered') THEN :now ELSE notice.closed_at END,
        next_action_at = NULL, step = 'done'
    WHERE notice.root_id = :notice_id AND notice.id <> :notice_id
      AND notice.state IN ('pending', 'delivered', 'timed_out') AND EXISTS (SELECT 1 FROM upd)
    RETURNING notice.id
), cancelled AS (
    -- COALESCE keeps the planner on the notice_id index (see service.cancel_chase).
    UPDATE outbox SET status = 'cancelled', error_code = 'acknowledged', updated_at = :now
    WHERE outbox.notice_id = ANY (ARRAY(SELECT id FROM chain) || CAST(:notice_id AS integer))
      AND COALESCE(outbox.status, '') = 'queued' AND outbox.kind IN ('recall', 'deputy', 'escalation')
      AND EXISTS (SELECT 1 FROM upd)
    RETURNING outbox.id
), led AS (
    INSERT INTO ledger_pending (at, actor, action, subject_type, subject_id, details)
    SELECT :now, COALESCE(CAST(:actor AS varchar), 'person:' || ins.person_id), 'ack.recorded', 'notice',
           CAST(:notice_id AS varchar),
           CAST(jsonb_build_object(
               'notice_id', CAST(:notice_id AS integer), 'warning_id', ins.warning_id,
               'person_id', ins.person_id, 'round', ins.round, 'path', CAST(:path AS varchar),
               'late', ins.late, 'source', CAST(:source AS varchar),
               'raw_input', CAST(:raw_short AS varchar))
             || CASE WHEN CAST(:path AS varchar) = 'proxy'
                     THEN jsonb_build_object('proxy_method', CAST(:proxy_method AS varchar),
                                             'note', CAST(:note AS varchar),
                                             'actor_user_id', CAST(:actor_user_id AS integer))
                     ELSE '{}'::jsonb END
             || CASE WHEN EXISTS (SELECT 1 FROM chain) OR EXISTS (SELECT 1 FROM cancelled)
                     THEN jsonb_build_object('chain_stopped', ARRAY(SELECT id FROM chain),
                                             'messages_cancelled', (SELECT count(*) FROM cancelled))
                     ELSE '{}'::jsonb END AS json)
    FROM ins WHERE EXISTS (SELECT 1 FROM upd)
    RETURNING id
)
SELECT ins.id, ins.round, ins.late, ins.warning_id, ins.person_id,
       EXISTS (SELECT 1 FROM upd) AS updated,
       ARRAY(SELECT id FROM chain) AS chain,
       (SELECT count(*) FROM cancelled) AS cancelled,
       (SELECT count(*) FROM led) AS ledger
FROM ins
"""
_SQL = text(_SQL_TEXT).bindparams(bindparam("now", type_=UTCDateTime))

# Run on its own (autocommit), the statement must undo itself when a lift or a new round won the race
# between `ins` and `upd`: the cast then fails and PostgreSQL rolls the whole statement back.
RACE_MARKER = "acknowledgment race, rolled back: notice"
_ALONE_TEXT = _SQL_TEXT.replace(
    "EXISTS (SELECT 1 FROM upd) AS updated",
    f"CASE WHEN EXISTS (SELECT 1 FROM upd) THEN true ELSE CAST('{RACE_MARKER} ' || ins.id AS boolean) END"
    " AS updated")
_PARAM = re.compile(r"(?<!:):(\w+)")


def to_asyncpg(sql: str) -> tuple[str, list[str]]:
    """`:name` parameters → asyncpg's `$n` (`::type` casts are left alone); the SQL and the names in order."""
    names: list[str] = list(dict.fromkeys(_PARAM.findall(sql)))
    return _PARAM.sub(lambda m: f"${names.index(m.group(1)) + 1}", sql), names


_ALONE_SQL, _NAMES = to_asyncpg(_ALONE_TEXT)
POOL_SIZE = 10
_pools: weakref.WeakKeyDictionary[Database, Any] = weakref.WeakKeyDictionary()
_pool_lock: asyncio.Lock | None = None


@dataclass(frozen=True)
class FastResult:
    ack_id: int
    round: int
    late: bool
    warning_id: int
    person_id: int
    updated: bool  # False: the notice changed meanwhile (lift, new round, sweep); the insert must be undone
    chain: list[int]
    cancelled: int


def _params(*, notice_id: int, path: str, now: datetime, raw_input: str | None, source: str | None,
            actor_user_id: int | None, proxy_method: str | None, note: str | None, actor: str | None
            ) -> dict[str, Any]:
    return {"notice_id": notice_id, "path": path, "now": now,
            "raw_input": raw_input[:500] if raw_input else None,
            "raw_short": raw_input[:200] if raw_input else None,
            "source": source[:100] if source else None, "proxy_method": proxy_method,
            "note": note[:1000] if note else None, "actor_user_id": actor_user_id, "actor": actor}


def _result(row: Any) -> FastResult:
    return FastResult(ack_id=row[0], round=row[1], late=bool(row[2]), warning_id=row[3], person_id=row[4],
                      updated=bool(row[5]), chain=list(row[6] or []), cancelled=int(row[7]))


async def try_acknowledge(session: AsyncSession, **kw: Any) -> FastResult | None:
    """The winner's whole transaction in one statement, in the caller's transaction; None when no
    acknowledgment row was inserted."""
    row = (await session.execute(_SQL, _params(**kw))).first()
    return _result(row) if row is not None else None


class RawQuery:
    """A read-only query run through the hot-path pool on PostgreSQL, through a session on SQLite."""

    def __init__(self, sql: str) -> None:
        self.text = text(sql)
        self.asyncpg_sql, self.names = to_asyncpg(sql)

    async def fetch(self, db: Database, **params: Any) -> list[tuple[Any, ...]]:
        if db.is_sqlite:
            async with db.session() as s:
                return [tuple(r) for r in (await s.execute(self.text, params)).all()]
        pool = await pool_for(db)
        async with pool.acquire() as apg:
            return [tuple(r) for r in await apg.fetch(self.asyncpg_sql, *[params[n] for n in self.names])]


async def _no_reset(_conn: Any) -> None:
    """Nothing to reset: these connections only ever run single autocommit statements."""


async def pool_for(db: Database) -> Any:
    """A small asyncpg pool beside the engine's, for the hot path.

    SQLAlchemy's pool pings each connection it hands out (BEGIN; ";"; ROLLBACK — three round trips)
    and its session machinery costs several times what this one statement does.
    """
    global _pool_lock
    pool = _pools.get(db)
    if pool is not None:
        return pool
    import asyncpg

    _pool_lock = _pool_lock or asyncio.Lock()
    async with _pool_lock:
        pool = _pools.get(db)
        if pool is None:
            dsn = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=POOL_SIZE, reset=_no_reset)
            _pools[db] = pool
    return pool


async def close_pool(db: Database) -> None:
    """Close the hot-path pool of this database, if one was opened (call before disposing the engine)."""
    pool = _pools.pop(db, None)
    if pool is not None:
        await pool.close()


async def acknowledge_alone(db: Database, **kw: Any) -> FastResult | None:
    """The same statement as one autocommit transaction of its own, straight through asyncpg.

    The link's hot path: one round trip. Only a clean first answer is committed; when nothing was
    inserted (a second answer, a refused notice) or a race was rolled back, None is returned and the
    general path works out why. A chain closed here gets its second look from the caller.
    """
    import asyncpg

    params = _params(**kw)
    pool = await pool_for(db)
    async with pool.acquire() as apg:
        try:
            row = await apg.fetchrow(_ALONE_SQL, *[params[n] for n in _NAMES])
        except asyncpg.InvalidTextRepresentationError as exc:
            if RACE_MARKER in str(exc):
                return None
            raise
    return _result(row) if row is not None else None
