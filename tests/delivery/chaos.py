"""The fault tests' harness: a Twilio-speaking server with latency and scripted misbehaviour that counts
every acceptance per outbox row, real worker processes, and the figures each fault prints.

"Doubled" is an outbox row the provider accepted more than once; "lost" a row not accepted at all once the
queue has drained; "in flight at the fault" the sends that had left a worker without their result being
recorded (requests open at the server, plus acceptances not yet in the database) — all a fault can double.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from aiohttp import web
from sqlalchemy import text

from tests.delivery.fake_twilio import FakeTwilio, _error
from warning_service.db import Database

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ChaosTwilio(FakeTwilio):
    latency: float = 0.02
    p429: float = 0.0
    p500: float = 0.0
    p_hang: float = 0.0
    hang: float = 20.0
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    open: int = 0
    accepted: Counter[int] = field(default_factory=Counter)
    accepted_at: dict[int, float] = field(default_factory=dict)  # last acceptance per outbox row
    last_accepted: float = 0.0
    hung: set[int] = field(default_factory=set)
    open_ids: set[int] = field(default_factory=set)

    async def _answer(self, request: web.Request, resource: str, form: dict[str, Any]) -> web.Response:
        oid = int(parse_qs(urlparse(str(form.get("StatusCallback", ""))).query).get("o", ["0"])[0])
        self.open += 1
        self.open_ids.add(oid)
        try:
            await asyncio.sleep(self.latency)
            roll = self.rng.random()
            if roll < self.p429:
                return _error(429, 20429, "Too Many Requests")
            if roll < self.p429 + self.p500:
                return _error(500, 20500, "Internal Server Error")
            if roll < self.p429 + self.p500 + self.p_hang:
                # Slower than the client waits — and then taken anyway: the worst a provider can do.
                self.hung.add(oid)
                await asyncio.sleep(self.hang)
            answer = await super()._answer(request, resource, form)
            if answer.status == 201:
                self.accepted[oid] += 1
                self.last_accepted = self.accepted_at[oid] = time.monotonic()
            return answer
        finally:
            self.open -= 1
            self.open_ids.discard(oid)


async def seed(db: Database, n: int) -> list[int]:
    """One active warning and `n` queued SMS (no notices: the workers render a fixed text)."""
    now = datetime.now(UTC)
    async with db.session() as s:
        wid = (await s.execute(text(
            "INSERT INTO early_warning (identifier, sender, sender_code, hazard, level, status, state, title, "
            "description, instruction, issued_at, effective_at, targets, area_desc, policy, revision, ack_round, "
            "reply_code, source, updated_at) VALUES (:i, '温岭市防汛防台抗旱指挥部', '33108100000000', 'typhoon', "
            "'red', 'actual', 'active', '台风红色预警', '故障测试', '立即到岗', :t, :t, '[\"331081\"]', '温岭市', "
            "'{}', 1, 1, 1, 'api', :t) RETURNING id"), {"i": f"fault-{time.time_ns()}", "t": now})).scalar_one()
        await s.execute(text(
            "INSERT INTO outbox (warning_id, revision, kind, channel, address, priority, status, attempts, "
            "next_attempt_at, idempotency_key, created_at, updated_at) VALUES (:w, 1, 'alert', 'sms', :a, 4, "
            "'queued', 0, :t, :k, :t, :t)"),
            [{"w": wid, "a": f"+86139{i:08d}", "t": now, "k": f"fault-{wid}-{i}"} for i in range(n)])
        ids = [r[0] for r in (await s.execute(text("SELECT id FROM outbox WHERE warning_id = :w"), {"w": wid}))]
    return ids


async def recorded(db: Database) -> tuple[int, set[int]]:
    """How many rows are in a final sent state, and which rows have an accepted attempt recorded."""
    async with db.session() as s:
        done = (await s.execute(text("SELECT count(*) FROM outbox WHERE status IN ('sent', 'delivered')"))
                ).scalar_one()
        ids = {r[0] for r in await s.execute(text(
            "SELECT DISTINCT outbox_id FROM delivery_attempt WHERE status IN ('sent', 'delivered')"))}
    return done, ids


class Workers:
    """Real worker processes (python -m tests.delivery.run_dispatcher)."""

    def __init__(self, url: str, twilio_url: str, concurrency: int, *, redis_url: str | None = None,
                 settings: dict[str, object] | None = None) -> None:
        self.args = [url, twilio_url, str(concurrency)] + (["--redis-url", redis_url] if redis_url else [])
        for k, v in (settings or {}).items():
            self.args += ["--set", f"{k}={v}"]
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self) -> asyncio.subprocess.Process:
        # WS_FAULT_LOGS=<dir> keeps each worker's log there (to see why a scenario stalled).
        logs = os.environ.get("WS_FAULT_LOGS")
        out = open(Path(logs) / f"worker-{time.time_ns()}.log", "wb") if logs else None  # noqa: SIM115, ASYNC230
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.delivery.run_dispatcher", *self.args, cwd=ROOT,
            stdout=out or asyncio.subprocess.DEVNULL, stderr=out or asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        if out is not None:
            out.close()  # the child holds its own descriptor
        self.procs.append(proc)
        return proc

    async def stop_all(self) -> None:
        for p in self.procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                async with asyncio.timeout(30):
                    await p.wait()
            except TimeoutError:
                p.kill()
                await p.wait()


async def wait_until(predicate: Any, *, deadline: float, step: float = 0.02) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not await predicate():
        if loop.time() > end:
            raise AssertionError(f"not reached within {deadline} s")
        await asyncio.sleep(step)


@dataclass
class Figures:
    name: str
    total: int
    lost: int
    doubled: int
    in_flight_at_fault: int
    drain_seconds: float
    held_back: int = 0
    held_back_seconds: float = 0.0
    doubled_after_timeout: int = 0

    def line(self) -> str:
        return (f"{self.name}: {self.total} SMS, lost {self.lost}, doubled {self.doubled} "
                f"(in flight at the fault {self.in_flight_at_fault}"
                + (f"; after a provider timeout {self.doubled_after_timeout}" if self.doubled_after_timeout else "")
                + f"); the {self.held_back} held by the victim delivered {self.held_back_seconds:.1f} s after "
                f"recovery; queue drained {self.drain_seconds:.1f} s after recovery")


def figures(name: str, fake: ChaosTwilio, ids: list[int], *, in_flight: int, recovered_at: float,
            held: set[int] | None = None) -> Figures:
    """`held`: the rows the fault caught (claimed by the victim): how long after recovery the last of them went."""
    doubled = {i for i, n in fake.accepted.items() if n > 1}
    held = held or set()
    last_held = max((fake.accepted_at.get(i, recovered_at) for i in held), default=recovered_at)
    return Figures(name=name, total=len(ids), lost=sum(1 for i in ids if fake.accepted[i] == 0),
                   doubled=len(doubled), in_flight_at_fault=in_flight,
                   drain_seconds=max(0.0, fake.last_accepted - recovered_at), held_back=len(held),
                   held_back_seconds=max(0.0, last_held - recovered_at),
                   doubled_after_timeout=len(doubled & fake.hung))


async def in_flight_now(db: Database, fake: ChaosTwilio) -> int:
    """Sends that have left a worker and whose result is not in the database: open requests plus acceptances
    not yet recorded (measured right after the fault, when nothing more can be recorded by the victim)."""
    _, recorded_ids = await recorded(db)
    return fake.open + sum(1 for i in fake.accepted if i not in recorded_ids)
