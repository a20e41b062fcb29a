"""The heavy-read lane: exports and big reports use PostgreSQL one statement at a time, and rest after each.

Answers are short statements that commit; a province export or a grid report is a few dozen statements of
a fraction of a second to a few seconds of CPU each. On a county's two-core database server two heavy
statements at once take every core, and the answers' commits wait for a CPU to flush their WAL — links that
take 20 ms took seconds. PostgreSQL has no per-statement priority, so the heavy readers take turns instead:

- one heavy statement at a time in the whole deployment: a session-level advisory lock, held by a separate
  connection of the reading process (the statement's own transaction may abort, and an aborted transaction
  cannot release a lock; a process that dies closes that connection, and the lock goes with it);
- after a statement that kept the lane for t seconds, the lane stays closed for t × (1/share − 1): heavy reads
  take at most `share` of one database core on average, and the answers keep the rest.

Installed only on the engines of heavy readers (`Database(background=True)`), on PostgreSQL; the hooks are
SQLAlchemy's cursor events, which run inside the async driver's greenlet, so they may await.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_only

LANE_KEY = 0x5753_4852  # "WSHR": one lane for every heavy reader of the database


class Lane:
    """One process's way into the lane; `install` hooks it onto an engine's statements."""

    def __init__(self, *, dsn: str, share: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        self.dsn, self.share, self.clock, self.sleep = dsn, share, clock, sleep
        self._local = asyncio.Lock()  # one statement of this process at a time (the advisory lock is reentrant)
        self._conn: asyncpg.Connection | None = None
        self._since: float | None = None
        self.busy = 0.0  # seconds this process held the lane, and rested after it: what operators ask
        self.rested = 0.0

    def rest_after(self, busy: float) -> float:
        return busy * (1 / self.share - 1)

    async def enter(self) -> None:
        await self._local.acquire()
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self.dsn, server_settings={"application_name":
                                                                              "warning-service heavy-read lane"})
            await self._conn.execute("SELECT pg_advisory_lock($1)", LANE_KEY)
        except BaseException:
            # Cut short (cancelled, connection lost): the lock may have been granted unseen; closing the
            # connection is the one sure way to let it go.
            self._drop()
            self._local.release()
            raise
        self._since = self.clock()

    async def leave(self, *, rest: bool = True) -> None:
        if self._since is None:
            return
        busy, self._since = self.clock() - self._since, None
        try:
            pause = self.rest_after(busy) if rest else 0.0
            self.busy += busy
            if pause > 0:
                self.rested += pause
                await self.sleep(pause)
        finally:
            try:
                if self._conn is not None and not self._conn.is_closed():
                    await self._conn.execute("SELECT pg_advisory_unlock($1)", LANE_KEY)
            except BaseException:
                self._drop()
                raise
            finally:
                self._local.release()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    def install(self, engine: AsyncEngine) -> None:
        sync = engine.sync_engine

        def before(*_: Any) -> None:
            await_only(self.enter())

        def after(*_: Any) -> None:
            await_only(self.leave())

        def failed(_context: Any) -> None:
            # A failed statement leaves the lane at once: no rest is owed for work that produced nothing.
            await_only(self.leave(rest=False))

        event.listen(sync, "before_cursor_execute", before)
        event.listen(sync, "after_cursor_execute", after)
        event.listen(sync, "handle_error", failed)
