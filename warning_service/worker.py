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

from warning_service.delivery.dispatcher import Dispatcher
from warning_service.drills.jobs import drill_tick
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
        self._running: set[asyncio.Task[object]] = set()
        self.dispatcher: Dispatcher | None = None
        self._dispatching: asyncio.Task[None] | None = None

    def _job(self, name: str, fn: Callable[[Runtime], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
        lock = self._locks.setdefault(name, asyncio.Lock())

        async def run() -> None:
            if lock.locked() or self.rt.stopping.is_set():
                return  # the previous tick of this job is still working; it will pick up the rest
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)
            try:
                async with lock:
                    await fn(self.rt)
            except Exception:  # noqa: BLE001 — a failed tick is logged and the next one retries
                log.exception("worker_job_failed", job=name)
            finally:
                self._running.discard(task)

        return run

    async def start(self) -> None:
        s = self.rt.settings
        self.rt.stopping.clear()
        # A scheduler that was down acts on return, and once: each tick acts on everything overdue in the
        # database, so the runs it missed are coalesced into one (coalesce), none is dropped however late
        # (misfire_grace_time=None), and the first tick runs at start rather than one interval later
        # (next_run_time). A slow tick is never overlapped by the next: `_job`'s lock returns the next one at
        # once. APScheduler's own guard (max_instances=1) would do the same but log a WARNING every second
        # while an export or a long sweep runs, so it is left one above.
        common = {"coalesce": True, "max_instances": 2, "misfire_grace_time": None,
                  "next_run_time": datetime.now(UTC)}
        # The dispatcher streams on its own task (not a scheduler job a shutdown could cancel mid-write).
        self.dispatcher = Dispatcher(self.rt)
        self._dispatching = asyncio.create_task(self._dispatch(), name="dispatcher")
        self.scheduler.add_job(self._job("escalation", escalation_tick), "interval",
                               seconds=s.escalation_tick_seconds, id="escalation", **common)
        self.scheduler.add_job(self._job("ledger_seal", seal_tick), "interval", seconds=2, id="ledger_seal",
                               **common)
        self.scheduler.add_job(self._job("drills", drill_tick), "interval", seconds=s.drill_tick_seconds, id="drills",
                               **common)
        self.scheduler.add_job(self._job("exports", export_tick), "interval", seconds=s.export_poll_seconds,
                               id="exports", **common)
        self.scheduler.start()
        shortest = shortest_wait(self.rt.policy)
        log.info("worker_started", dispatcher=self.dispatcher.id, concurrency=s.channel_concurrency,
                 escalation_every=s.escalation_tick_seconds, shortest_wait=shortest)
        if s.escalation_tick_seconds > shortest * TICK_FRACTION:
            log.warning("escalation_tick_too_slow", escalation_every=s.escalation_tick_seconds,
                        shortest_wait=shortest, advice=f"set ESCALATION_TICK_SECONDS <= {shortest * TICK_FRACTION:g}")

    async def _dispatch(self) -> None:
        """Run the dispatcher until stopped; a crash (a bug, never a provider or database error, which it rides
        out) is logged and the engine started afresh: its rows come back through the heartbeat."""
        while not self.rt.stopping.is_set():
            try:
                await self.dispatcher.run()  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001
                log.exception("dispatcher_crashed")
                await asyncio.sleep(1.0)
                self.dispatcher = Dispatcher(self.rt)

    async def stop(self) -> None:
        """Stop ticking and wait for running ticks to finish; the dispatcher finishes or hands back what it
        holds (sends under way get DISPATCH_STOP_GRACE_SECONDS) and records every result; nothing is cut
        mid-write."""
        self.rt.stopping.set()
        # APScheduler's asyncio executor *cancels* the ticks it is running when shut down; a tick cancelled
        # mid-commit can leave its connection holding SQLite's write lock. So: pause (no new ticks; ones
        # already handed out see `stopping` and return), let the running ticks finish, then shut down.
        if self.scheduler.running:
            self.scheduler.pause()
        if self._dispatching is not None:
            await self._dispatching
            self._dispatching = None
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
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
