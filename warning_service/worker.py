"""The worker: APScheduler ticks; the database remembers what is due.

Each job claims rows from the database, acts, and commits; nothing about individual notices or
messages lives in memory, so any number of workers can run and a restarted one simply carries on.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from warning_service.delivery.dispatcher import dispatch_tick
from warning_service.early_warning.models import Hazard, Level
from warning_service.early_warning.policy import PolicyBook
from warning_service.escalation.service import escalation_tick
from warning_service.exports.jobs import export_tick
from warning_service.ledger.jobs import seal_tick
from warning_service.logging import get_logger
from warning_service.runtime import Runtime

log = get_logger(__name__)
# The escalation tick must be a small fraction of the shortest wait it enforces, or deadlines slip visibly.
TICK_FRACTION = 0.1


def shortest_wait(policy: PolicyBook) -> float:
    """The shortest answer deadline or re-call interval any hazard × level demands, in seconds."""
    waits: list[float] = []
    for hazard in Hazard:
        for level in Level:
            p = policy.resolve(hazard.value, level.value)
            if p.ack_required:
                waits += [p.ack_deadline, p.recall_interval]
    return min(waits, default=float("inf"))


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
        s = self.rt.settings
        self.rt.stopping.clear()
        # A scheduler that was down acts on return, and once: each tick acts on everything overdue in the
        # database, so the runs it missed are coalesced into one (coalesce), none is dropped however late
        # (misfire_grace_time=None), a slow tick is never overlapped by the next (max_instances=1), and the
        # first tick runs at start rather than one interval later (next_run_time).
        common = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None,
                  "next_run_time": datetime.now(UTC)}
        self.scheduler.add_job(self._job("dispatch", dispatch_tick), "interval",
                               seconds=s.dispatch_interval_seconds, id="dispatch", **common)
        self.scheduler.add_job(self._job("escalation", escalation_tick), "interval",
                               seconds=s.escalation_tick_seconds, id="escalation", **common)
        self.scheduler.add_job(self._job("ledger_seal", seal_tick), "interval", seconds=2, id="ledger_seal",
                               **common)
        self.scheduler.add_job(self._job("exports", export_tick), "interval", seconds=s.export_poll_seconds,
                               id="exports", **common)
        self.scheduler.start()
        shortest = shortest_wait(self.rt.policy)
        log.info("worker_started", dispatch_every=s.dispatch_interval_seconds,
                 escalation_every=s.escalation_tick_seconds, shortest_wait=shortest)
        if s.escalation_tick_seconds > shortest * TICK_FRACTION:
            log.warning("escalation_tick_too_slow", escalation_every=s.escalation_tick_seconds,
                        shortest_wait=shortest, advice=f"set ESCALATION_TICK_SECONDS <= {shortest * TICK_FRACTION:g}")

    async def stop(self) -> None:
        """Stop ticking and wait for running ticks to finish their current batch; nothing is cut mid-write."""
        # A long tick checks this between batches and ends after the one it is writing.
        self.rt.stopping.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for lock in self._locks.values():
            async with lock:
                pass
        log.info("worker_stopped")

    async def run_until_signalled(self) -> None:
        """Start, run until SIGTERM or SIGINT, then stop cleanly (for `warning-service worker`)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()
