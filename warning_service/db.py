"""Async engine and sessions for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import DateTime, String, event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.types import TypeDecorator

from warning_service.lane import Lane


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both databases (SQLite keeps naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Region paths are compared as byte strings; PostgreSQL's default locale collation would ignore the "/"
# separators and break range scans, so the column is "C" collated there.
PathString = String(255).with_variant(String(255, collation="C"), "postgresql")


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10, background: bool = False) -> AsyncEngine:
    # hide_parameters: a failed statement's traceback must not put names and phone numbers into the logs.
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=20, pool_pre_ping=True,
                               connect_args={"server_settings": BACKGROUND_SETTINGS if background
                                             else SERVER_SETTINGS},
                               hide_parameters=True)


# No JIT: our statements are short and planned for indexes, but a cost estimate over the threshold (an array
# predicate the planner cannot size, e.g. the answer's chase cancellation) made PostgreSQL compile every answer:
# ~50 ms of CPU for a statement that runs in 1 ms (answers/s fell from ~2,000 to 45).
SERVER_SETTINGS = {"jit": "off", "application_name": "warning-service"}
# Heavy readers (exports, big reports) share the database's cores with the answers: one backend each, never a
# team of parallel workers that would take every core for seconds; named, so an operator can tell them apart
# in pg_stat_activity.
BACKGROUND_SETTINGS = {**SERVER_SETTINGS, "max_parallel_workers_per_gather": "0",
                       "application_name": "warning-service heavy read"}

# Connections of the raw pool only ever run single autocommit statements: nothing to reset between uses.
RAW_POOL_SIZE = 10


async def _no_reset(_conn: Any) -> None:
    return None


class Database:
    """Owns the engine and the session factory for one process, and on PostgreSQL a small raw pool.

    The raw asyncpg pool serves the hottest single statements (a person's answer, a phone's open notices):
    SQLAlchemy's pool pings each connection it hands out (three round trips) and its session machinery costs
    several times what one such statement does.
    """

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10,
                 heavy_read_share: float | None = None) -> None:
        """`heavy_read_share`: this process reads heavily (an export, a big report); on PostgreSQL its
        statements go through the heavy-read lane (lane.py) and take at most that share of one core."""
        self.url = url
        background = heavy_read_share is not None
        self.engine = make_engine(url, echo=echo, pool_size=pool_size, background=background)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, class_=AsyncSession)
        self._raw_pool: asyncpg.Pool | None = None
        self._raw_lock = asyncio.Lock()
        self.lane: Lane | None = None
        if background and not self.is_sqlite:
            self.lane = Lane(dsn=self._dsn(), share=heavy_read_share)  # type: ignore[arg-type]
            self.lane.install(self.engine)

    def _dsn(self) -> str:
        return self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def raw_pool(self, *, min_size: int = 1) -> asyncpg.Pool:
        """The raw asyncpg pool (PostgreSQL only), opened on first use with `min_size` connections."""
        if self._raw_pool is None:
            async with self._raw_lock:
                if self._raw_pool is None:
                    self._raw_pool = await asyncpg.create_pool(self._dsn(), min_size=min_size,
                                                               max_size=RAW_POOL_SIZE, reset=_no_reset,
                                                               server_settings=SERVER_SETTINGS)
        return self._raw_pool

    async def warm(self) -> None:
        """Open the connections a burst of answers needs before the first answer arrives.

        An API process that starts during a warning (a deploy, a restart, a second replica) would otherwise
        open them one at a time under the burst itself, each a new PostgreSQL backend started while people
        wait. (A fresh process's first second stays slower than the rest for other reasons: its caches, the
        callers' own new connections — bench.heavy_reads prints it as the warm-up.) SQLite has nothing to open.
        """
        if self.is_sqlite:
            return
        await self.raw_pool(min_size=RAW_POOL_SIZE)
        async with AsyncExitStack() as held:  # the session pool too: pool_size connections at once, then back
            await asyncio.gather(*[held.enter_async_context(self.engine.connect())
                                   for _ in range(self.engine.pool.size())])  # type: ignore[attr-defined]

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: committed on success, rolled back on any error."""
        async with self.sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def dispose(self) -> None:
        if self.lane is not None:
            await self.lane.close()
        if self._raw_pool is not None:
            pool, self._raw_pool = self._raw_pool, None
            await pool.close()
        await self.engine.dispose()
