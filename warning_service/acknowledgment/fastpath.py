"""PostgreSQL: a primary notice's first answer in one statement (one round trip instead of six).

During a province-wide warning tens of thousands of people answer within minutes, mostly by tapping the
link or replying 1 to their only open notice. This statement does for that common case exactly what
`service.acknowledge` does step by step — the INSERT … ON CONFLICT (notice_id, round) DO NOTHING still
decides who wins, and everything else happens only for the winner:

  n          the notice, if it is a primary notice that can still be answered
  ins        the acknowledgment row (the arbiter)
  upd        the notice → acknowledged, nothing more to do, guarded against a lift or new round
  chain      its open deputy/escalation notices → closed, timed-out ones no longer chased
  cancelled  queued re-calls, deputy calls and escalations of all of them → cancelled
  led        the "ack.recorded" ledger entry

Anything else (no row inserted: a second answer, a refused notice, a deputy/escalation notice whose chain
root must be locked first) falls back to the general path, which works out why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.db import Database, UTCDateTime

_SQL_TEXT = """
WITH n AS (
    SELECT n.id, n.round, n.warning_id, n.person_id, n.deadline
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
    UPDATE notice SET state = 'acknowledged', acknowledged_at = :now, next_action_at = NULL, step = 'done'
    FROM ins
    WHERE notice.id = :notice_id AND notice.round = ins.round
      AND notice.state IN ('pending', 'delivered', 'timed_out')
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
# The same statement for asyncpg's own protocol: `:name` → `$n` (`::type` casts are left alone).
_PARAM = re.compile(r"(?<!:):(\w+)")
_NAMES: list[str] = list(dict.fromkeys(_PARAM.findall(_SQL_TEXT)))
_ASYNCPG_SQL = _PARAM.sub(lambda m: f"${_NAMES.index(m.group(1)) + 1}", _SQL_TEXT)


@dataclass(frozen=True)
class FastResult:
    ack_id: int
    round: int
    late: bool
    warning_id: int
    person_id: int
    updated: bool  # False: a lift or new round won the race; the caller must undo the insert
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


async def acknowledge_alone(db: Database, **kw: Any) -> FastResult | None:
    """The same statement in a transaction of its own, straight through asyncpg on a pooled connection.

    This is the link's hot path: the session machinery costs several times what the statement does.
    Only a clean first answer is committed; anything else (nothing inserted, a lost race, a chain to
    close — which needs a second look) is rolled back and None returned, for the general path to handle.
    """
    params = _params(**kw)
    args = [params[n] for n in _NAMES]
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        apg = raw.driver_connection
        tx = apg.transaction()
        await tx.start()
        try:
            row = await apg.fetchrow(_ASYNCPG_SQL, *args)
            result = _result(row) if row is not None else None
            if result is None or not result.updated or result.chain:
                await tx.rollback()
                return None
            await tx.commit()
            return result
        except BaseException:
            await tx.rollback()
            raise
