"""Dispatch the Zhejiang warning at real provider latency: worker processes running the streaming engine
(`Dispatcher`, real renderer, channels built from settings exactly as in production: each provider behind its
gate) send through the REAL adapter (Aliyun SDK, SendBatchSms; or the twilio library) to a local server that
speaks the provider's API in a process of its own and checks every request's signature / credentials.

    python -m bench.latency [--provider aliyun|twilio] [--latency 200ms|tail] [--workers 1|2] [--limit N]
                            [--concurrency 500] [--batch-size 500] [--redis-url redis://…/7]
                            [--database-url postgresql://postgres@127.0.0.1:5432/ws_latency_bench]
                            [--profile DIR]

`tail` is the long-tail mix: 95 % of calls 150 ms, 5 % 3 s. `--limit 0` sends the whole warning (every
message of it goes by SMS through the provider: 156,000 messages). Prints messages/s, the time until the last
message was accepted (at the server), worker CPU per message (process time of the workers, start-up
excluded), and the in-flight counts (sends open in each worker; calls open at the server). `--profile DIR`
runs `py-spy record` on the first worker and prints its top functions. The machine's load (`uptime`) is
printed before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench import zhejiang
from bench.dispatch import bench_warning, requeue
from bench.provider_servers import PROVIDERS
from bench.zhejiang import ensure_zhejiang
from warning_service import heap, loop
from warning_service.config import Settings, async_database_url
from warning_service.db import Database

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/ws_latency_bench"


def latency_fn(mode: str) -> Any:
    if mode == "tail":
        rng = random.Random(14)
        return lambda: 3.0 if rng.random() < 0.05 else 0.150
    seconds = float(mode.removesuffix("ms")) / 1000 if mode.endswith("ms") else float(mode)
    return lambda: seconds


def _serve(provider: str, mode: str, out: Any, go: Any, stop: Any) -> None:
    async def main() -> None:
        served = await PROVIDERS[provider].serve(latency_fn(mode))
        out.put(served.base_url)
        await asyncio.to_thread(go.wait)
        cpu0 = time.process_time()
        await asyncio.to_thread(stop.wait)
        served.figures.cpu = time.process_time() - cpu0
        out.put(served.figures)
        await served.runner.cleanup()

    loop.run(main())  # the provider's side as light as the workers': uvloop where installed


@dataclass
class WorkerReport:
    claimed: int
    cpu: float
    finished: float  # time.time()
    max_in_flight: int
    totals: dict[str, int]


def _work(values: dict[str, Any], ready: Any, go: Any, out: Any) -> None:
    from warning_service.delivery.dispatcher import Dispatcher
    from warning_service.logging import configure_logging
    from warning_service.runtime import build_runtime

    async def main() -> None:
        settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        configure_logging(settings.log_level, json=True)
        rt = await build_runtime(settings)
        heap.settle()  # as `warning-service worker` does once started
        engine = Dispatcher(rt)
        ready.put(os.getpid())
        await asyncio.to_thread(go.wait)
        cpu0 = time.process_time()
        claimed = await engine.run(drain=True)
        cpu = time.process_time() - cpu0
        finished = time.time()
        await rt.close()
        out.put(WorkerReport(claimed, cpu, finished, engine.max_in_flight, dict(engine.recorder.totals)))

    loop.run(main(), kind=values.get("event_loop", "auto"))


async def prepare(url: str, limit: int) -> tuple[Counter[str], Counter[str]]:
    """Issue the warning once, put all of it back in the queue as SMS, keep `limit` of them queued."""
    await ensure_zhejiang(url, fresh=False, verbose=True)
    settings = Settings(_env_file=None, database_url=url, environment="development")  # type: ignore[call-arg]
    db = Database(async_database_url(url))
    try:
        wid = await bench_warning(db, settings)
        async with db.session() as s:
            issued = Counter(dict((await s.execute(text(
                "SELECT channel, count(*) FROM outbox WHERE warning_id = :w GROUP BY channel"),
                {"w": wid})).all()))
        await requeue(db, wid)
        async with db.session() as s:
            # The bench measures one SMS provider: every message to a person (SMS, voice, e-mail) goes as an
            # SMS to a mobile; the loudspeaker messages (no person, no link) stay broadcast, on its stub adapter.
            await s.execute(text(
                "UPDATE outbox SET channel = 'sms', address = '+86' || (13900000000 + id)::text "
                "WHERE warning_id = :w AND notice_id IS NOT NULL "
                "AND (channel <> 'sms' OR address NOT LIKE '+861%')"), {"w": wid})
            await s.execute(text("UPDATE outbox SET channel = 'broadcast' WHERE warning_id = :w AND notice_id IS NULL"),
                            {"w": wid})
            if limit:
                await s.execute(text(
                    "UPDATE outbox SET status = 'sent' WHERE warning_id = :w AND id NOT IN "
                    "(SELECT id FROM outbox WHERE warning_id = :w ORDER BY id LIMIT :n)"), {"w": wid, "n": limit})
            queued = Counter(dict((await s.execute(text(
                "SELECT channel, count(*) FROM outbox WHERE warning_id = :w AND status = 'queued' GROUP BY channel"),
                {"w": wid})).all()))
        return queued, issued
    finally:
        await db.dispose()


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def top_functions(raw: Path, n: int = 15) -> list[tuple[float, float, str]]:
    """From py-spy's raw (collapsed) output: (self %, total %, function) of the busiest functions."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        c = int(count)
        samples += c
        frames = stack.split(";")
        own[frames[-1]] += c
        for f in set(frames):
            total[f] += c
    return [(100 * v / samples, 100 * total[k] / samples, k) for k, v in own.most_common(n)] if samples else []


def run(args: argparse.Namespace) -> None:
    provider = PROVIDERS[args.provider]
    print(f"load before: {uptime()}", flush=True)
    queued, issued = asyncio.run(prepare(args.database_url, args.limit))
    n = sum(queued.values())
    ctx = multiprocessing.get_context("spawn")
    server_out, stop, go = ctx.Queue(), ctx.Event(), ctx.Event()
    server = ctx.Process(target=_serve, args=(args.provider, args.latency, server_out, go, stop), daemon=True)
    server.start()
    base_url = server_out.get(timeout=60)
    values: dict[str, Any] = {
        # Production, as a deployment runs: templates read once (development re-checks the files per batch).
        "database_url": args.database_url, "redis_url": args.redis_url, "environment": "production",
        "secret_key": "bench-latency-secret-key-0123456789abcdefghijkl",
        "log_level": args.log_level, "event_loop": args.event_loop, "public_base_url": "https://yj.example.gov.cn",
        "channel_concurrency": args.concurrency, "dispatch_batch_size": args.batch_size,
        # Pacing is what the providers allow; the bench measures the engine and the adapter, so no limit binds.
        "channel_rate_limits": "sms=1000000", "provider_rate_limits": f"{args.provider}=1000000",
        **provider.settings(base_url)}
    ready, out = ctx.Queue(), ctx.Queue()
    workers = [ctx.Process(target=_work, args=(values, ready, go, out)) for _ in range(args.workers)]
    for w in workers:
        w.start()
    pids = [ready.get(timeout=120) for _ in workers]
    spy = None
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        raw = args.profile / f"{args.provider}-{args.latency}-w{args.workers}.txt"
        spy = subprocess.Popen(["py-spy", "record", "--pid", str(pids[0]), "--format", "raw", "--rate", "200",
                                "--nonblocking", "-o", str(raw)], stdout=subprocess.DEVNULL)
        time.sleep(1.0)  # py-spy attaches before the clock starts
    print(f"{provider.note}; latency {args.latency}; {n:,} messages queued ({queued['sms']:,} SMS to people through "
          f"{args.provider}, {queued['broadcast']:,} loudspeaker messages on the broadcast stub; warning issued as "
          f"{', '.join(f'{c} {k:,}' for c, k in sorted(issued.items()))}); {args.workers} worker(s), "
          f"CHANNEL_CONCURRENCY={args.concurrency}, DISPATCH_BATCH_SIZE={args.batch_size}, "
          f"Redis {'yes' if args.redis_url else 'no'}; worker pids {pids}", flush=True)
    t0 = time.time()
    go.set()
    reports: list[WorkerReport] = [out.get(timeout=3600) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    stop.set()
    figures = server_out.get(timeout=60)
    server.join(timeout=30)
    if spy is not None:
        spy.wait(timeout=60)
    elapsed = max(r.finished for r in reports) - t0
    done = sum(r.claimed for r in reports)
    cpu = sum(r.cpu for r in reports)
    last = figures.last_accepted - t0 if figures.accepted else float("nan")
    print(f"dispatched {done:,} in {elapsed:.1f} s = {done / elapsed:,.0f} msg/s; last accepted at {last:.1f} s "
          f"({figures.accepted:,} accepted at the server, {figures.refused} refused, in {figures.calls:,} calls)")
    print(f"worker CPU {cpu:.1f} s = {cpu / max(done, 1) * 1e3:.3f} ms/message "
          f"(per worker: {', '.join(f'{r.cpu:.1f} s / {r.claimed:,}' for r in reports)}); "
          f"in flight: ≤{max(r.max_in_flight for r in reports)} sends per worker, ≤{figures.max_open} calls open "
          f"at the server; outcomes {sum((Counter(r.totals) for r in reports), Counter())}")
    print(f"provider server CPU {figures.cpu:.1f} s = {figures.cpu / max(figures.accepted, 1) * 1e3:.3f} ms/message "
          f"(its share of the same two cores: what a real provider would spend on its own machines)")
    print(f"load after: {uptime()}", flush=True)
    if spy is not None:
        print("py-spy, first worker, busiest functions (self %, total %):")
        for own, total, name in top_functions(raw):
            print(f"  {own:5.1f} {total:5.1f}  {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=DEFAULT_URL)
    ap.add_argument("--redis-url", default=None, help="share buckets, breakers and figures as in production")
    ap.add_argument("--provider", choices=sorted(PROVIDERS), default="aliyun")
    ap.add_argument("--latency", default="200ms", help="'200ms', '0', or 'tail' (95 %% 150 ms, 5 %% 3 s)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=20_000, help="messages to dispatch (0: the whole warning)")
    ap.add_argument("--concurrency", type=int, default=500, help="CHANNEL_CONCURRENCY (sends in flight per worker)")
    ap.add_argument("--batch-size", type=int, default=500, help="DISPATCH_BATCH_SIZE (largest claim)")
    ap.add_argument("--log-level", default="INFO")
    ap.add_argument("--event-loop", choices=["auto", "uvloop", "asyncio"], default="auto",
                    help="EVENT_LOOP of the workers")
    ap.add_argument("--profile", type=Path, default=None, help="py-spy the first worker, raw output in this dir")
    ap.add_argument("--divisions", default=None, help="another divisions CSV than the repository's")
    args = ap.parse_args()
    if args.divisions:
        zhejiang.DIVISIONS = Path(args.divisions)
    sys.setrecursionlimit(10_000)
    run(args)


if __name__ == "__main__":
    main()
