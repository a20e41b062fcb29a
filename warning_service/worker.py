"""The worker: APScheduler ticks; the database remembers what is due.

Each job claims rows from the database, acts, and commits; nothing about individual notices or
messages lives in memory, so any number of workers can run and a restarted one simply carries on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from warning_service.logging import get_logger
from warning_service.runtime import Runtime

log = get_logger(__name__)


class Worker:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self._locks: dict[str, asyncio.Lock] = {}

    def _job(self, name: str, fn: Callable[[Runtime], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
        lock = self._locks.setdefault(name, asyncio.Lock())

        async def run() -> None:
            if lock.locked():
                return  # the previous tick of this job is still working; it will pick up the rest
            async with lock:
                try:
                    await fn(self.rt)
                except Exception:  # noqa: BLE001 — a failed tick is logged and the next one retries
                    log.exception("worker_job_failed", job=name)

        return run

    async def start(self) -> None:
        from warning_service.delivery.dispatcher import dispatch_tick
        from warning_service.escalation.service import escalation_tick
        from warning_service.ledger.jobs import seal_tick

        s = self.rt.settings
        # coalesce: a scheduler that was down runs each job once on return, and each run acts on
        # everything overdue in the database; misfire_grace_time=None never drops a late run.
        common = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        self.scheduler.add_job(self._job("dispatch", dispatch_tick), "interval",
                               seconds=s.dispatch_interval_seconds, id="dispatch", **common)
        self.scheduler.add_job(self._job("escalation", escalation_tick), "interval",
                               seconds=s.escalation_tick_seconds, id="escalation", **common)
        self.scheduler.add_job(self._job("ledger_seal", seal_tick), "interval", seconds=2, id="ledger_seal",
                               **common)
        self.scheduler.start()
        log.info("worker_started", dispatch_every=s.dispatch_interval_seconds,
                 escalation_every=s.escalation_tick_seconds)

    async def stop(self) -> None:
        self.scheduler.shutdown(wait=False)
        for lock in self._locks.values():
            async with lock:
                pass
        log.info("worker_stopped")
