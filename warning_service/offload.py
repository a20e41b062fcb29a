"""Process pools for heavy reads: exports and big reports run in child processes, not on the event loop.

A thread would share the interpreter lock with the loop, and one page of a province export (building
thousands of rows of cells) holds it long enough to stall every answer the process serves; a child process
costs its start-up once and leaves the loop and the parent's memory alone. Children start by "spawn" (a
fork of a process running an event loop and connection pools would inherit both). Export children are
replaced after every export, so the memory one export took is returned to the system.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from warning_service import heap

T = TypeVar("T")
# Children run at a lower CPU priority than the process serving answers: on a machine with two cores an
# export and a report are three processes (with PostgreSQL) wanting CPU, and an answer must not queue behind them.
CHILD_NICENESS = 19


class _Child(multiprocessing.context.SpawnProcess):
    """A pool child whose priority is lowered from the parent the moment it exists: it yields the CPU to the
    answering process (and, with it, to PostgreSQL).

    Done here rather than in a pool initializer, which runs too late for the costliest part of a child's start:
    "spawn" first imports the parent's main module (for the worker, the whole CLI and with it the application),
    ~1 s of CPU that ran at full priority and showed as a burst of slow answers when an export started.
    """

    def start(self) -> None:
        super().start()
        try:
            os.setpriority(os.PRIO_PROCESS, self.pid, CHILD_NICENESS)  # type: ignore[arg-type]
        except OSError:  # gone already, or not permitted here: it runs at the parent's priority
            pass


class _Spawn(multiprocessing.context.SpawnContext):
    Process = _Child


class Pool:
    """A lazily started process pool; `run` awaits a function in a child without blocking the loop."""

    def __init__(self, *, workers: int, tasks_per_child: int | None = None) -> None:
        self.workers, self.tasks_per_child = workers, tasks_per_child
        self._executor: ProcessPoolExecutor | None = None

    def _get(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(max_workers=self.workers,
                                                 mp_context=_Spawn(),
                                                 max_tasks_per_child=self.tasks_per_child)
        return self._executor

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return asyncio.wrap_future(self._get().submit(heap.run_paused, fn, *args))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await self.submit(fn, *args)
        except BrokenProcessPool:
            self.reset()  # a child was killed: the next call gets a working pool
            raise

    def reset(self) -> None:
        """Drop a broken pool (a child was killed); the next call starts a new one."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def shutdown(self) -> None:
        """Stop the children now: an export cut short goes back to the queue (its lease runs out, or the
        stopping worker released it), and waiting for it would hold the process's exit for minutes."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        # The executor offers no way to stop a running task; its processes are reachable only here.
        for proc in list((getattr(executor, "_processes", None) or {}).values()):
            proc.terminate()
        executor.shutdown(wait=False, cancel_futures=True)
