"""Dispatch at real provider latency: the Zhejiang warning's SMS through the REAL Aliyun adapter (official SDK,
signed requests, SendBatchSms) against the local Aliyun-speaking server, which checks every signature and
answers after a configured latency. The streaming dispatcher (dispatch_tick drains through it).

    python -m bench.latency [--database-url postgresql://postgres@127.0.0.1:5432/ws_channels]
                            [--latency 200ms|tail] [--limit 20000] [--concurrency 50] [--batch-size 2000]

`tail` is the long-tail mix: 95 % of calls 150 ms, 5 % 3 s. The server runs in a process of its own so the CPU
figure is the worker's alone. Prints messages/s, seconds until the last message was accepted, worker CPU per
message, and the in-flight figures (sends waiting in the adapter; calls open at the server).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench import zhejiang
from bench.dispatch import bench_warning, requeue
from bench.zhejiang import ensure_zhejiang
from channels.base import Message, SendResult
from channels.fake import FakeAdapter
from channels.registry import ChannelRegistry
from channels.sms_aliyun import AliyunSmsAdapter, AliyunSmsConfig
from channels.templates import TemplateSet
from tests.delivery.fake_aliyun import ACCESS_KEY_ID, ACCESS_KEY_SECRET, FakeAliyun, start
from warning_service.clock import Clock
from warning_service.config import Settings, async_database_url
from warning_service.db import Database
from warning_service.delivery.dispatcher import dispatch_tick
from warning_service.runtime import Runtime

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/ws_channels"
TEMPLATES = ("alert=SMS_480000001:sender/20,area/20,hazard,level,reply_code,token;"
             "default=SMS_480000002:area/20,hazard,level")
REGISTERED = {"SMS_480000001": {"sender", "area", "hazard", "level", "reply_code", "token"},
              "SMS_480000002": {"area", "hazard", "level"}}
SIGN = "浙江防汛"


def latency_fn(mode: str) -> Any:
    if mode == "tail":
        return lambda: 3.0 if random.random() < 0.05 else 0.150
    seconds = float(mode.removesuffix("ms")) / 1000 if mode.endswith("ms") else float(mode)
    return lambda: seconds


def _serve(mode: str, port_queue: Any, stop: Any) -> None:
    async def main() -> None:
        fake = FakeAliyun(templates=REGISTERED, sign_names={SIGN}, latency=latency_fn(mode))
        runner = await start(fake)
        port_queue.put((fake.base_url, 0))
        await asyncio.to_thread(stop.wait)
        port_queue.put(("done", fake.max_in_flight, len(fake.sent()), len(fake.requests)))
        await runner.cleanup()

    asyncio.run(main())


class Watch:
    """Wraps the adapter to count what is in flight and when the last message was accepted."""

    def __init__(self, inner: AliyunSmsAdapter) -> None:
        self.inner = inner
        self.name = inner.name
        self.send_timeout = inner.send_timeout
        self.in_flight = self.max_in_flight = self.accepted = self.failed = 0
        self.last_accepted = 0.0

    async def send(self, message: Message) -> SendResult:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            r = await self.inner.send(message)
        finally:
            self.in_flight -= 1
        if r.status == "failed":
            self.failed += 1
        else:
            self.accepted += 1
            self.last_accepted = time.perf_counter()
        return r

    async def aclose(self) -> None:
        await self.inner.aclose()


async def run(url: str, mode: str, limit: int, concurrency: int, batch_size: int) -> None:
    from warning_service.logging import configure_logging

    configure_logging("WARNING")
    await ensure_zhejiang(url, fresh=False)  # the repository's divisions file unless --divisions names another
    ctx = multiprocessing.get_context("spawn")
    q, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(mode, q, stop), daemon=True)
    server.start()
    base_url, _ = q.get(timeout=30)
    settings = Settings(_env_file=None, database_url=url, environment="development",  # type: ignore[call-arg]
                        channel_rate_limits="sms=1000000,fake=1000000", channel_concurrency=concurrency,
                        dispatch_batch_size=batch_size)
    db = Database(async_database_url(url), pool_size=10)
    adapter = Watch(AliyunSmsAdapter(AliyunSmsConfig(
        access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET, sign_name=SIGN,
        templates=TemplateSet.parse(TEMPLATES, setting="ALIYUN_SMS_TEMPLATES", default_max=35),
        endpoint=base_url, timeout=10.0)))
    other = FakeAdapter(delivered=False)
    rt = Runtime(settings=settings, db=db, clock=Clock(), redis=None, channels=ChannelRegistry(
        {"sms": adapter, "voice": other, "email": other, "broadcast": other}))  # type: ignore[dict-item]
    try:
        wid = await bench_warning(db, settings)
        await requeue(db, wid)
        async with db.session() as s:
            # Only SMS is measured (and at most --limit of them): the rest is left out of the queue.
            await s.execute(text(
                "UPDATE outbox SET status = 'sent' WHERE warning_id = :w AND id NOT IN "
                "(SELECT id FROM outbox WHERE warning_id = :w AND channel = 'sms' ORDER BY id LIMIT :n)"),
                {"w": wid, "n": limit})
            n = (await s.execute(text("SELECT count(*) FROM outbox WHERE warning_id = :w AND status = 'queued'"),
                                 {"w": wid})).scalar_one()
        print(f"latency {mode}; {n} SMS queued; CHANNEL_CONCURRENCY={concurrency}; claim batch {batch_size}; "
              f"Aliyun SendBatchSms ≤100 numbers, 50 ms gather window; 1 worker")
        cpu0, t0 = time.process_time(), time.perf_counter()
        done = 0
        for _ in range(n + 1):  # tick after tick until the queue is empty (each sends ≥ 1)
            got = await dispatch_tick(rt)
            done += got
            if got == 0:
                break
        else:
            raise SystemExit(f"the queue of {n} messages was not empty after {n + 1} ticks")
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        stop.set()
        _, server_in_flight, server_sent, server_calls = q.get(timeout=30)
        last = adapter.last_accepted - t0 if adapter.accepted else float("nan")
        print(f"dispatched {done} in {elapsed:.1f} s = {done / elapsed:,.0f} msg/s; "
              f"last accepted at {last:.1f} s; accepted {adapter.accepted}, failed {adapter.failed}")
        print(f"worker CPU {cpu:.1f} s = {cpu / max(done, 1) * 1e6:,.0f} µs/message; "
              f"in flight: ≤{adapter.max_in_flight} sends in the adapter, ≤{server_in_flight} calls at the server; "
              f"server accepted {server_sent} SMS in {server_calls} calls; "
              f"at this pace 156,000 SMS take {156_000 / (done / elapsed) / 60:.1f} min")
    finally:
        stop.set()
        await rt.channels.aclose()
        await db.dispose()
        server.join(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=DEFAULT_URL)
    ap.add_argument("--latency", default="200ms", help="'200ms', '0', or 'tail' (95 %% 150 ms, 5 %% 3 s)")
    ap.add_argument("--limit", type=int, default=20_000, help="SMS to dispatch (the warning has ~130,000)")
    ap.add_argument("--concurrency", type=int, default=500, help="CHANNEL_CONCURRENCY (sends in flight per worker)")
    ap.add_argument("--batch-size", type=int, default=2000)
    ap.add_argument("--divisions", default=None, help="another divisions CSV than the repository's")
    args = ap.parse_args()
    if args.divisions:
        zhejiang.DIVISIONS = Path(args.divisions)
    asyncio.run(run(args.database_url, args.latency, args.limit, args.concurrency, args.batch_size))


if __name__ == "__main__":
    main()
