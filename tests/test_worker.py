"""The worker's scheduling: a slow tick is never overlapped, and waiting it out is not an operator's alarm."""

from __future__ import annotations

import asyncio
import logging

from channels.console import ConsoleAdapter
from channels.registry import ChannelRegistry
from tests.conftest import make_settings
from warning_service import worker as worker_module
from warning_service.runtime import Runtime
from warning_service.worker import Worker


async def test_a_tick_longer_than_its_interval_is_never_overlapped_and_logs_no_warning(
        db, clock, monkeypatch, caplog):
    # An export job holds its tick for a minute; the scheduler fires every 20 ms meanwhile.
    settings = make_settings(db, export_poll_seconds=0.02, escalation_tick_seconds=3600,
                             drill_tick_seconds=3600, dispatch_interval_seconds=3600)
    console = ConsoleAdapter(echo=False)
    rt = Runtime(settings=settings, db=db, clock=clock,
                 channels=ChannelRegistry({c: console for c in ("sms", "voice", "email", "broadcast")}))
    running = 0
    most = 0
    calls = 0
    release = asyncio.Event()
    started = asyncio.Event()
    fired_after_start = asyncio.Event()

    async def slow_export(runtime: Runtime) -> int:
        nonlocal running, most, calls
        calls += 1
        running += 1
        most = max(most, running)
        started.set()
        try:
            await release.wait()
        finally:
            running -= 1
        return 1

    real_job = Worker._job

    def counting_job(self, name, fn):  # noqa: ANN001, ANN202 — wraps the real one to see each firing
        run = real_job(self, name, fn)

        async def fired() -> None:
            if name == "exports" and started.is_set():
                fired_after_start.set()
            await run()

        return fired

    monkeypatch.setattr(worker_module, "export_tick", slow_export)
    monkeypatch.setattr(Worker, "_job", counting_job)
    caplog.set_level(logging.WARNING, logger="apscheduler")
    worker = Worker(rt)
    await worker.start()
    try:
        async with asyncio.timeout(20):  # the scheduler decides when it fires
            await started.wait()
            await fired_after_start.wait()  # the next interval came while the first tick still ran
            await asyncio.sleep(0.2)  # ~10 more intervals
    finally:
        release.set()
        await worker.stop()
    assert (calls, most) == (1, 1)
    assert not [r for r in caplog.records if r.name.startswith("apscheduler") and r.levelno >= logging.WARNING]
