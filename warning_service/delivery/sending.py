"""Sending a claimed batch: a few workers per channel, paced by shared token buckets, results recorded as
they come (so a slow, paced batch does not hold its receipts back, and a cancelled one keeps what it did)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from channels.base import Adapter, Message, SendResult, send_many
from warning_service.clock import Clock
from warning_service.delivery.ratelimit import RateLimiter
from warning_service.logging import get_logger

log = get_logger(__name__)

# A provider that neither answers nor fails within this long is treated as a timeout (retried later).
SEND_TIMEOUT_SECONDS = 30.0
FLUSH_EVERY_SECONDS = 1.0
FLUSH_EVERY_ROWS = 2000


@dataclass
class Item:
    row: Any  # a claimed outbox row (id, warning_id, notice_id, kind, channel, address, attempts, …)
    message: Message
    adapter: Adapter
    adapter_name: str
    bucket: tuple[str, float] | None  # (rate-limit key, messages per second) or None for unpaced


@dataclass
class Outcome:
    item: Item
    result: SendResult | None  # None: not attempted (paced out or stopped), goes back to the queue untouched
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Sink(Protocol):
    pending: list[Outcome]

    def add(self, outcome: Outcome) -> None: ...

    async def flush(self) -> None: ...

    async def drain(self, *, deadline: float) -> bool: ...


@dataclass
class Pacer:
    """Hands out one token per send from bulk grants; says False once waiting would overrun the deadline."""

    limiter: RateLimiter
    key: str
    rate: float
    burst: float
    wanted: int
    deadline: float
    local: int = 0
    exhausted: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def take(self) -> bool:
        while True:
            if self.local > 0:
                self.local -= 1
                self.wanted -= 1
                return True
            if self.exhausted:
                return False
            async with self.lock:
                if self.local > 0 or self.exhausted:
                    continue
                granted, wait = await self.limiter.take(self.key, max(1, self.wanted), self.rate, self.burst)
                if granted:
                    self.local += granted
                    continue
                loop = asyncio.get_running_loop()
                if loop.time() + wait > self.deadline:
                    self.exhausted = True
                    return False
                await asyncio.sleep(wait)


@dataclass
class StreamPacer:
    """The streaming dispatcher's pacer: takes tokens in bulk grants (as many as are waiting, at most one
    second's worth) from the shared bucket and waits, without a deadline, when it is dry — the heartbeat keeps
    the leases of paced rows alive."""

    limiter: RateLimiter
    key: str
    rate: float
    burst: float
    backlog: Callable[[], int]
    local: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def take(self, n: int = 1) -> None:
        """Wait for `n` tokens (a batch takes its messages' tokens together)."""
        while True:
            if self.local >= n:
                self.local -= n
                return
            if self.local > 0:  # a batch larger than what is left: take what there is, wait for the rest
                n -= self.local
                self.local = 0
            async with self.lock:
                if self.local > 0:
                    continue
                want = max(n, min(self.backlog(), int(self.burst)))
                granted, wait = await self.limiter.take(self.key, want, self.rate, self.burst)
                if granted:
                    self.local += granted
                    continue
                await asyncio.sleep(min(max(wait, 0.001), 1.0))


def raised(exc: Exception, *, limit: float | None, **where: Any) -> SendResult:
    """What a send that raised becomes: a timeout or an adapter bug, both retried later (never lost). An
    adapter bug is logged with `where` (adapter, outbox ids)."""
    if isinstance(exc, TimeoutError):
        return SendResult.transient("timeout", f"no answer within {limit:g}s")
    log.error("adapter_raised", exc_info=exc, **where)
    return SendResult.transient("adapter_error", f"{type(exc).__name__}: {exc}"[:500])


async def send_one(item: Item, clock: Clock) -> Outcome:
    started = clock.now()
    # Adapters that cannot block (console, fake) say so with send_timeout = None and skip the watchdog.
    limit = getattr(item.adapter, "send_timeout", SEND_TIMEOUT_SECONDS)
    try:
        if limit is None:
            result = await item.adapter.send(item.message)
        else:
            async with asyncio.timeout(limit):
                result = await item.adapter.send(item.message)
    except Exception as exc:  # noqa: BLE001 — a timeout or an adapter bug must not lose the message
        result = raised(exc, limit=limit, adapter=item.adapter_name, outbox_id=item.row.id)
    return Outcome(item, result, started, clock.now())


async def send_batch(items: Sequence[Item], clock: Clock) -> list[Outcome]:
    """`send_one` for items of one channel whose adapter takes batches (`max_batch` > 1): one `send_many`."""
    started = clock.now()
    adapter = items[0].adapter
    limit = getattr(adapter, "send_timeout", SEND_TIMEOUT_SECONDS)
    messages = [it.message for it in items]
    try:
        if limit is None:
            results = await send_many(adapter, messages)
        else:
            async with asyncio.timeout(limit):
                results = await send_many(adapter, messages)
        if len(results) != len(items):
            raise RuntimeError(f"{len(items)} messages answered with {len(results)} results")
    except Exception as exc:  # noqa: BLE001 — a timeout or an adapter bug must not lose the messages
        results = [raised(exc, limit=limit, adapter=items[0].adapter_name,
                          outbox_ids=[it.row.id for it in items][:20])] * len(items)
    finished = clock.now()
    return [Outcome(it, r, started, finished) for it, r in zip(items, results, strict=True)]


async def send_all(items: Sequence[Item], *, recorder: Sink, limiter: RateLimiter,
                   burst_for: Callable[[float], float], concurrency: int, pace_budget: float,
                   clock: Clock) -> None:
    """Send every item once (or hand it back unsent) and record each outcome through `recorder`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, pace_budget)
    queues: dict[str, deque[Item]] = {}
    wanted: dict[str, int] = {}
    for it in items:
        queues.setdefault(it.row.channel, deque()).append(it)
        if it.bucket:
            wanted[it.bucket[0]] = wanted.get(it.bucket[0], 0) + 1
    pacers: dict[str, Pacer] = {}
    for it in items:
        if it.bucket and it.bucket[0] not in pacers:
            key, rate = it.bucket
            pacers[key] = Pacer(limiter, key, rate, burst_for(rate), wanted[key], deadline)
    wake = asyncio.Event()

    async def worker(q: deque[Item]) -> None:
        while q:
            it = q.popleft()
            sent = False
            try:
                pacer = pacers.get(it.bucket[0]) if it.bucket else None
                if pacer is not None and not await pacer.take():
                    recorder.add(Outcome(it, None))
                    while q:  # the bucket is dry until past the deadline: hand the rest back too
                        recorder.add(Outcome(q.popleft(), None))
                    return
                sent = True
                recorder.add(await send_one(it, clock))
            except asyncio.CancelledError:
                if not sent:
                    recorder.add(Outcome(it, None))
                # A send under way may have reached the provider: leave its row 'sending' for the lease.
                raise
            if len(recorder.pending) >= FLUSH_EVERY_ROWS:
                wake.set()

    stopping = False

    async def flusher() -> None:
        while True:
            try:
                await asyncio.wait_for(wake.wait(), FLUSH_EVERY_SECONDS)
            except TimeoutError:
                pass
            wake.clear()
            if stopping:
                return
            try:
                await recorder.flush()
            except Exception:  # noqa: BLE001 — kept pending; the final drain retries
                log.warning("dispatch_flush_retry", pending=len(recorder.pending))

    async def finish() -> None:
        # Never cancel a flush half-way through its transaction: let the flusher finish, then flush the rest.
        nonlocal stopping
        stopping = True
        wake.set()
        await asyncio.gather(flushing, return_exceptions=True)
        await recorder.drain(deadline=asyncio.get_running_loop().time() + 30.0)

    flushing = asyncio.create_task(flusher())
    workers = [worker(q) for q in queues.values() for _ in range(min(concurrency, len(q)))]
    try:
        await asyncio.gather(*workers)
    except asyncio.CancelledError:
        for q in queues.values():
            while q:
                recorder.add(Outcome(q.popleft(), None))
        await asyncio.shield(finish())
        raise
    await finish()
