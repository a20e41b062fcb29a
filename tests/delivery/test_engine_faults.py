"""The delivery engine under faults, with real worker processes, real PostgreSQL and the real Twilio library
against the local Twilio-speaking server: each test prints lost / doubled / time to drain.

Goal (issue 11): 0 lost; doubled ≤ the sends in flight at the instant of the fault (≤ CHANNEL_CONCURRENCY per
worker hit); the rest delivered within 10 s of recovery. PostgreSQL only (`-m faults` selects them; they run in
CI with TEST_DATABASE_URL). The PostgreSQL-stop scenario starts a cluster of its own; the Redis one a
redis-server of its own — never the shared ones.

The scenarios are independent (each has its own database made from one migrated template, its own
Twilio-speaking server and its own workers), so they run side by side (PARALLEL at a time) in a thread of
their own, all started by the first of these tests to ask (`faults` fixture); each test waits for its
scenario and judges its figures. Only the stop grace is shortened (3 s); heartbeat, gone-interval and lease
keep their defaults (see ENGINE). The 30-s lease outlasts the 10-s outage, which outlasts the old recorder's
3.5 s of retries; the provider's hang outlasts the client's timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from tests.conftest import PG_URL
from tests.delivery.chaos import ChaosTwilio, Figures, Workers, figures, recorded, seed, wait_until
from tests.delivery.fake_twilio import start
from warning_service.config import async_database_url
from warning_service.db import Database
from warning_service.migrate import upgrade

pytestmark = pytest.mark.faults

# Small on purpose: on a shared 2-core machine the set is CPU-bound (the Twilio library, the local server, the
# database), and what each fault proves needs the in-flight window (CONCURRENCY) to be a fraction of N, not
# thousands of messages.
N = 400
CONCURRENCY = 20
# What a fault held back is delivered within this long after recovery (a dead worker is found gone in 5 s).
HELD_BACK_GOAL = 10.0
OUTAGE_SECONDS = 10.0
# The provider's hang outlasts the client's timeout: the call is given up, retried, and taken twice. The
# timeout stays long against the rest of the run (100 SMS), so that a row waiting behind a hung call shows.
CLIENT_TIMEOUT, HANG = 12.0, 15.0
# Retries of 429/500 answers sooner than the workers' 0.5/2-s backoff: what held the slowest never-hung row
# (27.7 s) was a chain of five 429/500 answers in a row, each retried after a growing backoff and queued behind
# the rows not yet tried — plus the workers' start-up, which the old figure counted.
# Heartbeat (1 s), gone-interval (5 s) and lease (30 s) keep their defaults on purpose: on this shared 2-core
# machine a worker starved of CPU beat late, and with a 2.5-s gone-interval two live workers took each other's
# rows back in turn and sent almost nothing; a 10-s lease ran out during the 10-s outage and doubled 86 rows.
# Only the stop grace is shorter (3 s): every send here answers in milliseconds or hangs far longer.
ENGINE = {"dispatch_stop_grace_seconds": 3.0}
PROVIDER_ENGINE = {**ENGINE, "twilio_timeout_seconds": CLIENT_TIMEOUT, "retry_base_seconds": 0.2,
                   "retry_max_seconds": 1.0}
SCENARIO_TIMEOUT = 240.0
# Scenarios running at once. Each starts two worker processes, and on a 2-core machine their start-up is CPU:
# more at once only queues them behind each other (and behind a fault's 10-s goal).
PARALLEL = int(os.environ.get("WS_FAULT_PARALLEL", "3"))


@dataclass
class Outcome:
    figures: Figures
    extra: dict[str, Any] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def accepted_share(fake: ChaosTwilio, n: int, share: float) -> None:
    async def reached() -> bool:
        return sum(1 for c in fake.accepted.values() if c) >= share * n
    await wait_until(reached, deadline=120)


async def drained(db: Database, ids: list[int], *, deadline: float) -> None:
    async def done() -> bool:
        n, _ = await recorded(db)
        return n == len(ids)
    await wait_until(done, deadline=deadline, step=0.05)


async def held_in_flight(db: Database, fake: ChaosTwilio, *, pid: int | None = None) -> tuple[int, set[int]]:
    """Rows still 'sending' (of the worker with `pid`, or of all): how many had reached the provider (their
    result not recorded when the fault struck — all that may go twice), and all of them (held back)."""
    where = "status = 'sending'" + (f" AND claimed_by LIKE '%:{pid}:%'" if pid is not None else "")
    # What had reached the provider is taken first, then the rows still unrecorded: the other order counted
    # rows a live worker held queued at the read and sent during it (43 "in flight" of at most 40).
    reached = {i for i, n in fake.accepted.items() if n} | set(fake.open_ids)
    async with db.session() as s:
        rows = {r[0] for r in await s.execute(text(f"SELECT id FROM outbox WHERE {where}"))}  # noqa: S608
    return len(rows & reached), rows


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / name).exists():
            return str(d / name)
    return None


class Cluster:
    """A throwaway PostgreSQL cluster on its own port (the test may stop it; never the shared server)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ws-fault-pg-"))
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0  # initdb refuses root
        if self.as_postgres:
            shutil.chown(self.dir, "postgres")

    def _run(self, *args: str) -> None:
        cmd = (["runuser", "-u", "postgres", "--"] if self.as_postgres else []) + list(args)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def init(self) -> None:
        self._run(str(_pg_bin("initdb")), "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres",
                  "--no-sync")
        self.start()

    def start(self) -> None:
        self._run(str(_pg_bin("pg_ctl")), "-D", str(self.dir / "data"), "-w", "-l", str(self.dir / "log"), "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        self._run(str(_pg_bin("pg_ctl")), "-D", str(self.dir / "data"), "-w", "-m", "fast", "stop")

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


# --- the scenarios (each on its own database, server and workers) ----------------------------------------------

async def kill_9(url: str, *, at: float) -> Outcome:
    async with provider() as chaos, database(url) as db:
        ids = await seed(db, N)
        workers = Workers(url, chaos.base_url, CONCURRENCY, settings=ENGINE)
        victim = await workers.start()
        await workers.start()
        try:
            await accepted_share(chaos, N, at)
            victim.send_signal(signal.SIGKILL)
            await victim.wait()
            killed_at = time.monotonic()
            in_flight, held = await held_in_flight(db, chaos, pid=victim.pid)
            await drained(db, ids, deadline=120)
        finally:
            await workers.stop_all()
        return Outcome(figures(f"kill -9 at {at:.0%}", chaos, ids, in_flight=in_flight, recovered_at=killed_at,
                               held=held))


async def sigterm(url: str) -> Outcome:
    async with provider() as chaos, database(url) as db:
        ids = await seed(db, N)
        workers = Workers(url, chaos.base_url, CONCURRENCY, settings=ENGINE)
        victim = await workers.start()
        await workers.start()
        try:
            await accepted_share(chaos, N, 0.5)
            victim.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            in_flight, held = await held_in_flight(db, chaos, pid=victim.pid)
            async with asyncio.timeout(30):
                code = await victim.wait()
            async with db.session() as s:  # it left nothing behind: no row is still held by it
                left = (await s.execute(text("SELECT count(*) FROM outbox WHERE status = 'sending' AND claimed_by "
                                             f"LIKE '%:{victim.pid}:%'"))).scalar_one()  # noqa: S608
            await drained(db, ids, deadline=120)
        finally:
            await workers.stop_all()
        return Outcome(figures("SIGTERM at 50%", chaos, ids, in_flight=in_flight, recovered_at=stopped_at,
                               held=held), {"exit_code": code, "left": left})


async def redis_killed(url: str) -> Outcome:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="ws-fault-redis-") as tmp:
        redis = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", tmp,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            async with provider() as chaos, database(url) as db:
                ids = await seed(db, N)
                workers = Workers(url, chaos.base_url, CONCURRENCY, settings=ENGINE,
                                  redis_url=f"redis://127.0.0.1:{port}/0")
                await workers.start()
                await workers.start()
                try:
                    await accepted_share(chaos, N, 0.5)
                    redis.kill()
                    await redis.wait()
                    killed_at = time.monotonic()
                    await drained(db, ids, deadline=120)
                finally:
                    await workers.stop_all()
                return Outcome(figures("Redis killed at 50%", chaos, ids, in_flight=0, recovered_at=killed_at))
        finally:
            if redis.returncode is None:
                redis.kill()
                await redis.wait()


async def flaky_provider(url: str) -> Outcome:
    async with provider() as chaos, database(url) as db:
        chaos.p429, chaos.p500, chaos.p_hang, chaos.hang = 0.20, 0.10, 0.02, HANG
        ids = await seed(db, N // 4)
        workers = Workers(url, chaos.base_url, CONCURRENCY, settings=PROVIDER_ENGINE)
        await workers.start()
        await workers.start()
        try:
            await wait_until(lambda: _any_accepted(chaos), deadline=120)
            # Timed from the first acceptance: the workers' start-up is not the provider's doing.
            started = min(chaos.accepted_at.values())
            # Hung calls time out after the client's timeout and go again (the provider may have taken them).
            await drained(db, ids, deadline=120)
        finally:
            await workers.stop_all()
        f = figures(f"provider 20% 429 + 10% 500 + 2% {HANG:g}-s hangs (client timeout {CLIENT_TIMEOUT:g} s)",
                    chaos, ids, in_flight=len(chaos.hung), recovered_at=started)
        last, at = max(((i, t) for i, t in chaos.accepted_at.items() if i not in chaos.hung), key=lambda it: it[1])
        async with db.session() as s:  # what held the slowest row that never hung: its attempts
            tries = (await s.execute(text(
                "SELECT status, error_code, started_at, finished_at FROM delivery_attempt WHERE outbox_id = :o "
                "ORDER BY id"), {"o": last})).all()
        t0 = tries[0].started_at if tries else None
        story = ", ".join(f"{t.status}/{t.error_code or '-'} +{(t.started_at - t0).total_seconds():.1f}s"
                          for t in tries)
        return Outcome(f, {"others": at - started, "hung": len(chaos.hung), "last_hung": chaos.last_accepted - started,
                           "slowest": f"row {last}: {len(tries)} attempts: {story}"})


async def _any_accepted(chaos: ChaosTwilio) -> bool:
    return bool(chaos.accepted_at)


async def postgresql_stopped(_: str) -> Outcome:
    if _pg_bin("initdb") is None or _pg_bin("pg_ctl") is None:
        raise FileNotFoundError("initdb/pg_ctl not found: the fault tests start their own PostgreSQL cluster")
    cluster = Cluster()
    try:
        await asyncio.to_thread(cluster.init)
        await asyncio.to_thread(upgrade, cluster.url)
        async with provider() as chaos, database(cluster.url) as own:
            ids = await seed(own, N)
            workers = Workers(cluster.url, chaos.base_url, CONCURRENCY, settings=ENGINE)
            await workers.start()
            await workers.start()
            try:
                await accepted_share(chaos, N, 0.5)
                in_flight, held = await held_in_flight(own, chaos)
                await asyncio.to_thread(cluster.stop)
                stopped = time.monotonic()
                # A worker (re)started meanwhile, as a supervisor does: it registers as soon as the database is
                # back, when the others' last beats are ten seconds old through no fault of theirs.
                await workers.start()
                # The outage itself lasts OUTAGE_SECONDS of real time: this is the fault, not a wait for one.
                await asyncio.sleep(OUTAGE_SECONDS - (time.monotonic() - stopped))
                accepted_while_down = sum(1 for c in chaos.accepted.values() if c)
                await asyncio.to_thread(cluster.start)
                back = time.monotonic()
                await own.engine.dispose()
                await drained(own, ids, deadline=120)
            finally:
                await workers.stop_all()
            f = figures(f"PostgreSQL stopped {OUTAGE_SECONDS:g} s at 50%", chaos, ids, in_flight=in_flight,
                        recovered_at=back, held=held)
            return Outcome(f, {"accepted_while_down": accepted_while_down})
    finally:
        await asyncio.to_thread(cluster.destroy)


SCENARIOS: dict[str, Callable[[str], Awaitable[Outcome]]] = {
    "postgresql": postgresql_stopped,  # the slowest first
    "provider": flaky_provider,
    "kill10": lambda url: kill_9(url, at=0.1),
    "kill50": lambda url: kill_9(url, at=0.5),
    "kill90": lambda url: kill_9(url, at=0.9),
    "sigterm": sigterm,
    "redis": redis_killed,
}


class provider:  # noqa: N801 — used as `async with provider() as chaos`
    async def __aenter__(self) -> ChaosTwilio:
        self.fake = ChaosTwilio()
        self.runner = await start(self.fake)
        return self.fake

    async def __aexit__(self, *_: object) -> None:
        await self.runner.cleanup()


class database:  # noqa: N801
    def __init__(self, url: str) -> None:
        self.db = Database(async_database_url(url), pool_size=3)

    async def __aenter__(self) -> Database:
        return self.db

    async def __aexit__(self, *_: object) -> None:
        await self.db.dispose()


class Faults:
    """Runs every scenario at once in a thread with its own event loop; `result(name)` waits for one."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.replace("postgresql+asyncpg://", "postgresql://")
        self.futures = {name: concurrent.futures.Future() for name in SCENARIOS}
        self.thread = threading.Thread(target=lambda: asyncio.run(self._all()), name="fault-scenarios", daemon=True)
        self.started = time.monotonic()

    def url(self, suffix: str) -> str:
        return f"{self.base}_{suffix}"

    async def _admin(self, *statements: str) -> None:
        host, _, _ = self.base.rpartition("/")
        conn = await asyncpg.connect(host + "/postgres")
        try:
            for sql in statements:
                await conn.execute(sql)
        finally:
            await conn.close()

    def _name(self, suffix: str) -> str:
        return self.url(suffix).rpartition("/")[2]

    async def _all(self) -> None:
        template = self._name("ftpl")
        names = [self._name(f"f_{n}") for n in SCENARIOS if n != "postgresql"]
        try:
            await self._admin(*(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in [*names, template]),
                              f'CREATE DATABASE "{template}"')
            await asyncio.to_thread(upgrade, self.url("ftpl"))
            await self._admin(*(f'CREATE DATABASE "{n}" TEMPLATE "{template}"' for n in names))
        except BaseException as exc:
            for fut in self.futures.values():
                fut.set_exception(exc)
            raise
        slots = asyncio.Semaphore(PARALLEL)
        # WS_FAULT_ONLY=kill50,provider runs only those (to look at one; the others' tests then fail).
        only = set(filter(None, os.environ.get("WS_FAULT_ONLY", "").split(","))) or set(SCENARIOS)
        await asyncio.gather(*(self._one(name, run, slots) for name, run in SCENARIOS.items() if name in only))
        await self._admin(*(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in [*names, template]))

    async def _one(self, name: str, run: Callable[[str], Awaitable[Outcome]], slots: asyncio.Semaphore) -> None:
        try:
            async with slots:
                t0 = time.monotonic()
                outcome = await asyncio.wait_for(run(self.url(f"f_{name}")), SCENARIO_TIMEOUT)
                outcome.extra["wall"] = time.monotonic() - t0
        except BaseException as exc:  # noqa: BLE001 — handed to the test that judges this scenario
            self.futures[name].set_exception(exc)
        else:
            self.futures[name].set_result(outcome)

    def result(self, name: str) -> Outcome:
        return self.futures[name].result(timeout=SCENARIO_TIMEOUT + 120)


@pytest.fixture(scope="module")
def faults() -> Iterator[Faults]:
    if not PG_URL:
        pytest.skip("the fault tests run on PostgreSQL (TEST_DATABASE_URL)")
    if _pg_bin("initdb") is None and os.environ.get("WS_REQUIRE_SERVICES") == "1":
        pytest.fail("initdb not found: the fault tests start their own PostgreSQL cluster")
    runner = Faults(PG_URL)
    runner.thread.start()
    yield runner
    runner.thread.join(timeout=SCENARIO_TIMEOUT + 60)
    print(f"\nfault scenarios, all at once: {time.monotonic() - runner.started:.1f} s wall")


def report(o: Outcome, *, bound: int) -> None:
    f = o.figures
    print(f"\n{f.line()} [scenario {o.extra.get('wall', 0):.1f} s wall]")
    assert f.lost == 0, f.line()
    assert f.doubled <= f.in_flight_at_fault <= bound, f.line()
    assert f.held_back_seconds <= HELD_BACK_GOAL, f.line()


@pytest.mark.parametrize("at", ["kill10", "kill50", "kill90"])
def test_a_worker_killed_mid_fanout_loses_nothing_and_doubles_only_its_sends_in_flight(faults, at):
    report(faults.result(at), bound=CONCURRENCY)


def test_sigterm_mid_fanout_finishes_or_hands_back_everything_it_holds(faults):
    o = faults.result("sigterm")
    assert o.extra["exit_code"] == 0
    assert o.extra["left"] == 0  # it left nothing behind: no row is still held by it
    report(o, bound=CONCURRENCY)
    assert o.figures.doubled == 0


def test_redis_killed_mid_fanout_slows_nothing_down_and_doubles_nothing(faults):
    o = faults.result("redis")
    assert o.figures.drain_seconds <= HELD_BACK_GOAL, o.figures.line()
    report(o, bound=0)


def test_a_provider_throttling_failing_and_hanging_delays_only_the_sends_it_hangs(faults):
    o = faults.result("provider")
    f, others = o.figures, o.extra["others"]
    print(f"\n{f.line()} [scenario {o.extra['wall']:.1f} s wall]; {o.extra['hung']:.0f} calls hung; "
          f"every row that never hung accepted {others:.1f} s "
          f"after the first acceptance ({o.extra['slowest']}), the last hung one {o.extra['last_hung']:.1f} s")
    assert f.lost == 0
    # Only a call the provider answered after the client gave up can go twice.
    assert f.doubled == f.doubled_after_timeout <= o.extra["hung"] <= CONCURRENCY
    # The hangs hold only their own slots: the rest is not held up behind them (a batch barrier took 155 s; it
    # would cost at least one client timeout per batch). Bound: two client timeouts, for a loaded machine.
    assert others < 2 * CLIENT_TIMEOUT, f.line()


def test_postgresql_stopped_ten_seconds_mid_fanout_loses_nothing_and_doubles_nothing(faults):
    o = faults.result("postgresql")
    print(f"\naccepted by the provider while the database was down: {o.extra['accepted_while_down']:.0f}")
    report(o, bound=2 * CONCURRENCY)
    # No worker died: each records what it sent meanwhile once the database is back, and none — not even one
    # started during the outage — judges another gone on beats the database could not take (it did: 20 doubled).
    assert o.figures.doubled == 0, o.figures.line()
