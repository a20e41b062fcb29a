"""Where SQLite (the embedded default) and PostgreSQL differ, answered in one place.

Every feature asks here instead of testing the dialect name itself, so a difference is written once:
INSERT … ON CONFLICT, matching a batch of ids, row claims that skip locked rows, time differences in
seconds, planner statistics after a bulk load, custom plans for a transaction, the server's uptime.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Integer, String, any_, extract, func, literal, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.db import Database

POSTGRESQL = "postgresql"


def name(session: AsyncSession) -> str:
    """The dialect the session is bound to: "postgresql" or "sqlite"."""
    return session.get_bind().dialect.name


def is_postgresql(session: AsyncSession) -> bool:
    return name(session) == POSTGRESQL


def insert(session: AsyncSession, table: Any) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (both databases spell it the same)."""
    return (postgresql.insert if is_postgresql(session) else sqlite.insert)(table)


def upsert(session: AsyncSession, table: Any, *, index_elements: list[str],
           update_columns: list[str] | None = None, index_where: Any = None) -> Any:
    """INSERT … ON CONFLICT (index_elements) DO UPDATE the columns given, or DO NOTHING without any."""
    stmt = insert(session, table)
    if not update_columns:
        return stmt.on_conflict_do_nothing(index_elements=index_elements, index_where=index_where)
    return stmt.on_conflict_do_update(index_elements=index_elements, index_where=index_where,
                                      set_={c: stmt.excluded[c] for c in update_columns})


async def bulk_upsert(session: AsyncSession, table: Any, rows: Sequence[dict[str, Any]], *,
                      index_elements: list[str], update_columns: list[str] | None = None, batch: int = 2000,
                      progress: Callable[[int, int], None] | None = None) -> None:
    """Upsert many rows in batches (multi-row INSERTs from one cached statement), reporting progress, then
    refresh the table's planner statistics: the next query over it is planned for its new size."""
    stmt = upsert(session, table, index_elements=index_elements, update_columns=update_columns)
    done = 0
    for part in chunks(rows, batch):
        await session.execute(stmt, part)
        done += len(part)
        if progress:
            progress(done, len(rows))
    await analyze(session, table.name)


def in_ids(session: AsyncSession, column: Any, ids: Sequence[Any]) -> Any:
    """`column IN (ids)`, written so a 1,000-id batch costs one parameter on PostgreSQL, not a thousand."""
    values = list(ids)
    if is_postgresql(session):
        kind = String if values and isinstance(values[0], str) else Integer
        return column == any_(literal(values, postgresql.ARRAY(kind)))
    return column.in_(values)


def skip_locked(session: AsyncSession, stmt: Any, *, of: Any = None, key_share: bool = False,
                read: bool = False) -> Any:
    """`FOR [NO KEY] UPDATE | FOR SHARE … SKIP LOCKED` on PostgreSQL; unchanged on SQLite, whose single
    writer already excludes every other transaction once it writes."""
    if not is_postgresql(session):
        return stmt
    return stmt.with_for_update(of=of, skip_locked=True, key_share=key_share, read=read)


def seconds_between(session_or_name: AsyncSession | str, later: Any, earlier: Any) -> Any:
    """`later - earlier` in seconds, as SQL."""
    dialect = session_or_name if isinstance(session_or_name, str) else name(session_or_name)
    if dialect == POSTGRESQL:
        return extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


async def server_uptime(session: AsyncSession) -> float | None:
    """Seconds since the database server started, by its own clock; None for SQLite, which lives in our process
    and so cannot have been down while we ran."""
    if not is_postgresql(session):
        return None
    return float((await session.execute(text(
        "SELECT extract(epoch FROM now() - pg_postmaster_start_time())"))).scalar_one())


def chunks(seq: Sequence[Any], size: int) -> list[list[Any]]:
    items = list(seq)
    return [items[i:i + size] for i in range(0, len(items), size)]


async def analyze(session: AsyncSession, *tables: str) -> None:
    """Refresh planner statistics after a bulk load, so the next big query is planned for the real sizes."""
    if is_postgresql(session):
        for t in tables:
            await session.execute(text(f'ANALYZE "{t}"'))


async def plan_each_time(session: AsyncSession) -> None:
    """Plan the rest of this transaction's statements for their own values.

    asyncpg prepares every statement, and from its sixth run PostgreSQL may switch to a generic plan that
    ignores the values: for a statement that writes 16,000 rows joined to rows written earlier in the same
    transaction (no statistics yet), the generic plan is a nested loop ten times slower (measured).
    """
    if is_postgresql(session):
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


class RawQuery:
    """A read-only query on a hot path: on PostgreSQL one statement on the raw asyncpg pool (compiled once,
    no session, no pre-ping), on SQLite through a session."""

    def __init__(self, sql: str) -> None:
        self.text = text(sql)
        compiled = self.text.compile(dialect=postgresql.asyncpg.dialect())
        self.asyncpg_sql, self.names = str(compiled), tuple(compiled.positiontup or ())

    async def fetch(self, db: Database, **params: Any) -> list[tuple[Any, ...]]:
        if db.is_sqlite:
            async with db.session() as s:
                return [tuple(r) for r in (await s.execute(self.text, params)).all()]
        pool = await db.raw_pool()
        async with pool.acquire() as conn:
            return [tuple(r) for r in await conn.fetch(self.asyncpg_sql, *[params[n] for n in self.names])]
