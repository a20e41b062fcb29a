"""Several workers, a scheduler that was down, a worker killed mid-sweep: each action happens exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import distinct, func, select

from channels.console import ConsoleAdapter
from channels.registry import ChannelRegistry
from tests.conftest import make_settings
from tests.escalation.conftest import (
    GRID,
    VILLAGE,
    add_people,
    count,
    issue,
    run_sweeps,
)
from warning_service import worker as worker_module
from warning_service.db import Database
from warning_service.delivery.models import OutboxMessage
from warning_service.escalation.service import escalation_tick, sweep
from warning_service.notice.models import Notice
from warning_service.runtime import Runtime
from warning_service.worker import Worker

MIN = timedelta(minutes=1)
ROOT = Path(__file__).resolve().parents[2]


async def recall_counts(db, warning_id) -> tuple[int, int, int]:
    """(notices advanced exactly once, recall messages, distinct notices with a recall)."""
    async with db.session() as s:
        once = (await s.execute(select(func.count()).select_from(Notice).where(
            Notice.warning_id == warning_id, Notice.attempt_count == 1, Notice.step == "recall"))
        ).scalar_one()
        msgs, distinct_notices = (await s.execute(
            select(func.count(), func.count(distinct(OutboxMessage.notice_id)))
            .where(OutboxMessage.warning_id == warning_id, OutboxMessage.kind == "recall"))).one()
    return once, msgs, distinct_notices


async def test_two_workers_on_postgresql_act_on_each_of_10000_due_notices_exactly_once(
        db, clock, settings, tree, town_top):
    if db.is_sqlite:
        pytest.skip("SQLite has one writer; concurrent claiming is a PostgreSQL matter")
    t0 = clock.now()
    await add_people(db, region=GRID, n=9_999, now=t0)
    wid = await issue(db, settings, clock, targets=[GRID], policy=town_top)
    assert await count(db, Notice, Notice.warning_id == wid) == 10_000
    now = t0 + 3 * MIN
    other = Database(db.url, pool_size=2)

    async def worker(database: Database) -> int:
        claimed = 0
        while True:
            async with database.session() as s:
                r = await sweep(s, now=now, batch_size=500)
            claimed += r.claimed
            if r.claimed == 0:
                return claimed

    try:
        async with asyncio.timeout(120):
            a, b = await asyncio.gather(worker(db), worker(other))
    finally:
        await other.dispose()
    assert a + b == 10_000 and a > 0 and b > 0
    assert await recall_counts(db, wid) == (10_000, 10_000, 10_000)
    assert (await run_sweeps(db, now)).claimed == 0


async def test_a_scheduler_down_for_ten_minutes_acts_once_on_everything_overdue(
        runtime, db, clock, settings, tree, town_top):
    t0 = clock.now()
    wid = await issue(db, settings, clock, targets=[VILLAGE], policy=town_top)  # 2 grids and the village head
    clock.set(t0 + 10 * MIN)  # deadline was at 3; three calls' worth of time has passed
    assert await escalation_tick(runtime) == 3
    assert await recall_counts(db, wid) == (3, 3, 3)
    async with db.session() as s:
        q = select(Notice.next_action_at).where(Notice.warning_id == wid)
        nexts = set((await s.execute(q)).scalars())
    assert nexts == {t0 + 13 * MIN}  # the next call keeps its interval from now, not from the missed times
    assert await escalation_tick(runtime) == 0
    clock.set(t0 + 12 * MIN)
    assert await escalation_tick(runtime) == 0
    clock.set(t0 + 13 * MIN)
    assert await escalation_tick(runtime) == 3


async def test_the_real_scheduler_returning_after_downtime_fires_each_overdue_action_once(
        db, clock, tree, town_top, monkeypatch):
    settings = make_settings(db, escalation_tick_seconds=0.05, dispatch_interval_seconds=3600)
    console = ConsoleAdapter(echo=False)
    rt = Runtime(settings=settings, db=db, clock=clock,
                 channels=ChannelRegistry({c: console for c in ("sms", "voice", "email", "broadcast")}))
    t0 = clock.now()
    wid = await issue(db, settings, clock, targets=[VILLAGE], policy=town_top)
    clock.set(t0 + 10 * MIN)
    ticks = 0
    five_ticks = asyncio.Event()
    real_tick = escalation_tick

    async def counted(runtime: Runtime) -> int:
        nonlocal ticks
        n = await real_tick(runtime)
        ticks += 1
        if ticks >= 5:
            five_ticks.set()
        return n

    monkeypatch.setattr(worker_module, "escalation_tick", counted)
    worker = Worker(rt)
    await worker.start()
    try:
        async with asyncio.timeout(20):  # the scheduler, not the test, decides when it ticks
            await five_ticks.wait()
    finally:
        await worker.stop()
    assert await recall_counts(db, wid) == (3, 3, 3)


@pytest.mark.parametrize("pause_in", [4])
async def test_a_worker_killed_mid_sweep_loses_nothing_and_doubles_nothing(
        db, clock, settings, tree, town_top, pause_in):
    t0 = clock.now()
    await add_people(db, region=GRID, n=1_999, now=t0)
    wid = await issue(db, settings, clock, targets=[GRID], policy=town_top)
    now = t0 + 3 * MIN
    batch = 200
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.escalation.killable_sweeper", db.plain_url, now.isoformat(), str(batch),
        str(pause_in), cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    committed, output = 0, []
    try:
        async with asyncio.timeout(60):
            while True:
                line = (await proc.stdout.readline()).decode()  # type: ignore[union-attr]
                output.append(line)
                assert line, "worker exited before pausing:\n" + "".join(output[-30:])
                if line.startswith("COMMITTED"):
                    committed += int(line.split()[1])
                if line.startswith("PAUSED"):
                    break
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # Batches before the kill are committed; the one in flight left no trace.
    assert committed == (pause_in - 1) * batch
    assert await recall_counts(db, wid) == (committed, committed, committed)

    after = await run_sweeps(db, now, batch_size=batch)  # a new worker picks up exactly the rest
    assert after.claimed == 2_000 - committed
    assert await recall_counts(db, wid) == (2_000, 2_000, 2_000)
    assert (await run_sweeps(db, now)).claimed == 0


async def test_a_worker_acts_at_once_on_start_and_stops_cleanly_on_sigterm(
        db, clock, settings, tree, town_top):
    from datetime import UTC, datetime

    clock.set(datetime.now(UTC) - 10 * MIN)  # the worker runs on the real clock: everything is overdue
    wid = await issue(db, settings, clock, targets=[VILLAGE], policy=town_top)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.escalation.run_worker", db.plain_url, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    output: list[str] = []
    try:
        async with asyncio.timeout(60):
            while "escalation_sweep" not in (output[-1] if output else ""):
                line = (await proc.stdout.readline()).decode()  # type: ignore[union-attr]
                assert line, "worker exited:\n" + "".join(output[-30:])
                output.append(line)
        proc.send_signal(signal.SIGTERM)
        tail: list[str] = []
        async with asyncio.timeout(30):
            # Read up to the worker's last word, not to EOF: a child process it started (an export's) may
            # hold the pipe open a moment longer than the worker itself lives.
            while not tail or "worker_stopped" not in tail[-1]:
                line = (await proc.stdout.readline()).decode()  # type: ignore[union-attr]
                if not line:
                    break
                tail.append(line)
            await proc.wait()
        rest = "".join(tail)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, rest
    assert "worker_stopped" in rest
    assert await recall_counts(db, wid) == (3, 3, 3)  # the first tick ran at start, not an interval later


def test_the_tick_is_checked_against_the_shortest_wait_any_policy_demands(tmp_path):
    from warning_service.config import Settings
    from warning_service.early_warning.policy import load_policy
    from warning_service.worker import TICK_FRACTION, shortest_wait

    assert shortest_wait(load_policy(None)) == 180  # red and orange: 3 and 5 minutes
    f = tmp_path / "policy.toml"
    f.write_text('[hazards.mountain_torrent.orange]\nack_deadline = "60s"\nrecall_interval = "40s"\n')
    assert shortest_wait(load_policy(f)) == 40
    # the default tick suits the default policy
    assert Settings.model_fields["escalation_tick_seconds"].default <= 180 * TICK_FRACTION
