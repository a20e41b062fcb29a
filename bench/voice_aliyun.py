"""Aliyun voice calls at provider latency: the REAL adapter (official dyvmsapi SDK, ACS3-HMAC-SHA256 signed
IvrCall) against the local Aliyun-speaking server in a process of its own, which checks every signature.

    python -m bench.voice_aliyun [--calls 2000] [--concurrency 50] [--latency-ms 200]

Prints calls/s, CPU of this process per call (signing, the SDK's HTTP session per call, JSON) and the most
calls open at once at the server. Aliyun itself allows 100 IvrCall/s per account and one call per callee per
minute; CHANNEL_RATE_LIMITS paces voice (default 50/s), so what matters here is the CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from typing import Any

from channels.base import Message, TemplateFields
from channels.templates import TemplateSet
from channels.voice_aliyun import AliyunVoiceAdapter, AliyunVoiceConfig
from tests.delivery.fake_aliyun import ACCESS_KEY_ID, ACCESS_KEY_SECRET, FakeAliyun, start

SHOW = "057186000000"
TEMPLATES = "alert=TTS_500001:sender/20,area/20,hazard,level,deadline"
REGISTERED = {"TTS_500001": {"sender", "area", "hazard", "level", "deadline"}, "TTS_500009": set()}


def _serve(latency: float, out: Any, stop: Any) -> None:
    async def main() -> None:
        fake = FakeAliyun(templates=REGISTERED, show_numbers={SHOW}, latency=lambda: latency)
        runner = await start(fake)
        out.put(fake.base_url)
        await asyncio.to_thread(stop.wait)
        out.put((len(fake.calls()), fake.max_in_flight))
        await runner.cleanup()

    asyncio.run(main())


def call(i: int) -> Message:
    return Message("voice", f"+86139{i:08d}", "", f"k{i}", gather_action="ack",
                   metadata={"kind": "alert", "outbox_id": str(i)},
                   template=TemplateFields(sender="温岭市防指", area="城东街道", hazard="台风", level="红色",
                                           deadline="07-21 18:30"))


async def run(base_url: str, *, calls: int, concurrency: int) -> tuple[float, float, int]:
    adapter = AliyunVoiceAdapter(AliyunVoiceConfig(
        access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET, called_show_number=SHOW,
        templates=TemplateSet.parse(TEMPLATES, setting="T", default_max=20), confirm_code="TTS_500009",
        endpoint=base_url, timeout=30.0, max_connections=concurrency))
    gate = asyncio.Semaphore(concurrency)
    failed = 0

    async def one(i: int) -> None:
        nonlocal failed
        async with gate:
            r = await adapter.send(call(i))
            failed += r.status == "failed"

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(calls)))
    return time.perf_counter() - wall, time.process_time() - cpu, failed


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--latency-ms", type=float, default=200.0)
    a = p.parse_args()
    out, stop = multiprocessing.Queue(), multiprocessing.Event()
    server = multiprocessing.Process(target=_serve, args=(a.latency_ms / 1000, out, stop), daemon=True)
    server.start()
    base_url = out.get(timeout=30)
    wall, cpu, failed = asyncio.run(run(base_url, calls=a.calls, concurrency=a.concurrency))
    stop.set()
    placed, max_open = out.get(timeout=30)
    server.join(timeout=10)
    print(f"calls={a.calls} concurrency={a.concurrency} latency={a.latency_ms:g}ms placed={placed} failed={failed}")
    print(f"calls/s={a.calls / wall:,.0f} wall={wall:.1f}s cpu/call={cpu / a.calls * 1e6:,.0f}µs "
          f"server max open={max_open}")


if __name__ == "__main__":
    main()
