"""The Tencent SMS adapter alone (official SDK, TC3-signed calls, every signature verified by the local server in a
process of its own): how fast one worker gets N texts accepted, and its CPU per text.

    python -m bench.tencent_sms [--n 5000] [--latency 0.2] [--concurrency 500] [--shared]

By default every text is personal (its own link token: one number per SendSms call, `--concurrency` calls at once);
`--shared` sends an all-clear that reads the same for everyone (grouped: up to 200 numbers per call). The
dispatcher is left out (bench/latency.py measures it with a real database); this is what the adapter costs.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
from typing import Any

from channels.base import Message, TemplateFields
from channels.sms_tencent import TencentSmsAdapter, TencentSmsConfig
from channels.templates import TemplateSet
from tests.channels.fake_tencent import (
    REGISTERED,
    SDK_APP_ID,
    SECRET_ID,
    SECRET_KEY,
    SIGN_NAME,
    TEMPLATES,
    FakeTencent,
    start,
)


def _serve(latency: float, port_queue: Any, stop: Any) -> None:
    async def main() -> None:
        fake = FakeTencent(templates=dict(REGISTERED), latency=lambda: latency)
        runner = await start(fake)
        port_queue.put(fake.base_url)
        await asyncio.to_thread(stop.wait)
        port_queue.put((fake.max_in_flight, len(fake.sent()), len(fake.requests)))
        await runner.cleanup()

    asyncio.run(main())


def message(i: int, shared: bool) -> Message:
    if shared:
        return Message("sms", f"+86139{i:08d}", "解除", f"c{i}", metadata={"kind": "allclear"},
                       template=TemplateFields(area="城东街道", hazard="台风", level="红色"))
    return Message("sms", f"+86139{i:08d}", "预警", f"k{i}", metadata={"kind": "alert"},
                   template=TemplateFields(sender="温岭市防指", area="城东街道", hazard="台风", level="红色",
                                           reply_code="1", token=f"{i:028d}"))


async def run(n: int, latency: float, concurrency: int, shared: bool) -> None:
    ctx = multiprocessing.get_context("spawn")
    q, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(latency, q, stop), daemon=True)
    server.start()
    base_url = q.get(timeout=60)
    adapter = TencentSmsAdapter(TencentSmsConfig(
        secret_id=SECRET_ID, secret_key=SECRET_KEY, sdk_app_id=SDK_APP_ID, sign_name=SIGN_NAME,
        templates=TemplateSet.parse(TEMPLATES, setting="TENCENT_SMS_TEMPLATES", default_max=6),
        endpoint=base_url, timeout=30.0, max_connections=concurrency))
    gate = asyncio.Semaphore(concurrency)  # the dispatcher's CHANNEL_CONCURRENCY

    async def one(i: int) -> str:
        async with gate:
            return (await adapter.send(message(i, shared))).status

    try:
        print(f"load: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f} on "
              f"{os.cpu_count()} cores; {n} {'shared' if shared else 'personal'} texts, server latency "
              f"{latency * 1000:.0f} ms, concurrency {concurrency}")
        cpu0, t0 = time.process_time(), time.perf_counter()
        statuses = await asyncio.gather(*(one(i) for i in range(n)))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        await adapter.aclose()
        stop.set()
    in_flight, sent, calls = q.get(timeout=60)
    server.join(timeout=10)
    ok = sum(s == "sent" for s in statuses)
    print(f"accepted {ok}/{n} in {elapsed:.1f} s = {n / elapsed:,.0f} texts/s; worker CPU {cpu:.2f} s = "
          f"{cpu / n * 1e6:,.0f} µs/text; server: {sent} SMS in {calls} calls, ≤{in_flight} calls at once")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--latency", type=float, default=0.2, help="seconds the server waits before answering")
    ap.add_argument("--concurrency", type=int, default=500)
    ap.add_argument("--shared", action="store_true", help="one text for all (grouped up to 200 per call)")
    args = ap.parse_args()
    asyncio.run(run(args.n, args.latency, args.concurrency, args.shared))


if __name__ == "__main__":
    main()
