"""Each provider behind a gate: its own rate limit (shared by every worker through Redis) and its own figures.

`ProviderGate` wraps one provider's adapter (inside a failover chain or alone). Before a send it waits for a
token of the provider's bucket (`PROVIDER_RATE_LIMITS`, e.g. `aliyun=5000,twilio=100`): a province-wide
warning is paced to what the contract allows, never refused. It enforces the provider's own timeout around
the call only, so time spent waiting for a token is never mistaken for a provider that hangs. Every outcome
and its latency go to `ProviderStats`, which `/metrics` renders per channel and provider.

`ProviderStats` counts in process and adds its counts to Redis at most once a second, so the API process,
which sends nothing, can show what every worker did; without Redis it shows its own (in-process) worker's.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from channels.base import Adapter, Message, SendResult, max_batch, send_many
from warning_service.delivery.ratelimit import RateLimiter, burst_for
from warning_service.delivery.sending import SEND_TIMEOUT_SECONDS, StreamPacer, raised
from warning_service.logging import get_logger

log = get_logger(__name__)

# Upper bounds of the latency histogram (seconds): a provider's call, from the gate's token to its answer.
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
# accepted: the provider took it; failed: it refused or failed it (or timed out) and the message stays with
# it; not_sent: it certainly did not take it, so the next provider of a chain got it (failed over);
# breaker_open: skipped unasked while its breaker was open.
OUTCOMES = ("accepted", "failed", "not_sent", "breaker_open")
SYNC_SECONDS = 1.0
KEY_PREFIX = "ws:provider:"


@dataclass
class _Figures:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    seconds: float = 0.0

    def add(self, other: _Figures) -> None:
        for k, v in other.counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.seconds += other.seconds

    def empty(self) -> bool:
        return not any(self.counts.values())


class ProviderStats:
    """(channel, provider) → outcomes and a latency histogram; totals of every worker when Redis is given."""

    def __init__(self, redis: Any | None = None, *, prefix: str = KEY_PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix
        self._unsynced: dict[tuple[str, str], _Figures] = defaultdict(_Figures)
        self._local: dict[tuple[str, str], _Figures] = defaultdict(_Figures)  # without Redis: the totals
        self._synced_at = time.monotonic()
        self._sync: asyncio.Task[None] | None = None

    def observe(self, channel: str, provider: str, outcome: str, seconds: float | None = None) -> None:
        f = (self._local if self.redis is None else self._unsynced)[(channel, provider)]
        f.counts[outcome] += 1
        if seconds is not None:
            f.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            f.seconds += seconds
        if self.redis is not None and time.monotonic() - self._synced_at >= SYNC_SECONDS and self._sync is None:
            self._synced_at = time.monotonic()
            self._sync = asyncio.get_running_loop().create_task(self._push())

    def skipped(self, channel: str, provider: str) -> None:
        self.observe(channel, provider, "breaker_open")

    async def _push(self) -> None:
        try:
            await self.flush()
        finally:
            self._sync = None

    async def flush(self) -> None:
        """Add what this process counted since the last flush to the shared totals (kept on a Redis error)."""
        if self.redis is None or not self._unsynced:
            return
        batch, self._unsynced = self._unsynced, defaultdict(_Figures)
        try:
            pipe = self.redis.pipeline(transaction=False)
            for (channel, provider), f in batch.items():
                key = f"{self.prefix}{channel}:{provider}"
                for k, v in f.counts.items():
                    if v:
                        pipe.hincrby(key, k, v)
                for i, v in enumerate(f.buckets):
                    if v:
                        pipe.hincrby(key, f"b{i}", v)
                pipe.hincrbyfloat(key, "seconds", f.seconds)
            await pipe.execute()
        except Exception as exc:  # noqa: BLE001 — figures must never stop a send: keep them for the next flush
            for k, f in batch.items():
                self._unsynced[k].add(f)
            log.warning("provider_stats_redis_unavailable", error=f"{type(exc).__name__}: {exc}"[:200])

    async def totals(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], _Figures]:
        """Every worker's figures for these (channel, provider) pairs (this process's unsynced ones added)."""
        out: dict[tuple[str, str], _Figures] = {p: _Figures() for p in pairs}
        for p in pairs:
            out[p].add(self._local.get(p) or _Figures())
            out[p].add(self._unsynced.get(p) or _Figures())
        if self.redis is None or not pairs:
            return out
        try:
            pipe = self.redis.pipeline(transaction=False)
            for channel, provider in pairs:
                pipe.hgetall(f"{self.prefix}{channel}:{provider}")
            rows = await pipe.execute()
        except Exception:  # noqa: BLE001 — metrics show this process's share rather than nothing
            return out
        for p, row in zip(pairs, rows, strict=True):
            h = {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in row.items()}
            shared = _Figures(counts={k: int(h.get(k, 0)) for k in OUTCOMES},
                              buckets=[int(h.get(f"b{i}", 0)) for i in range(len(LATENCY_BUCKETS) + 1)],
                              seconds=h.get("seconds", 0.0))
            out[p].add(shared)
        return out


def _outcome(result: SendResult) -> str:
    return "accepted" if result.status != "failed" else "not_sent" if result.not_sent else "failed"


class ProviderGate:
    """One provider's adapter behind its rate limit and its figures (see the module docstring)."""

    def __init__(self, inner: Adapter, *, provider: str, stats: ProviderStats, limiter: RateLimiter | None = None,
                 rate: float | None = None) -> None:
        self.inner = inner
        self.name = inner.name  # what attempts record, as before
        self.provider = provider  # as CHANNEL_ADAPTERS names it: the key of its limit and its figures
        self.stats = stats
        self.rate = rate
        self._waiting = 0
        self.pacer = None if limiter is None or not rate else StreamPacer(
            limiter, f"provider:{provider}", rate, burst_for(rate), backlog=lambda: self._waiting)
        self.timeout = getattr(inner, "send_timeout", SEND_TIMEOUT_SECONDS)
        # The gate bounds the provider's call itself; the dispatcher must not bound a wait for a token.
        self.send_timeout: float | None = None
        self.max_batch = max_batch(inner)

    async def send(self, message: Message) -> SendResult:
        if self.pacer is not None:
            self._waiting += 1
            try:
                await self.pacer.take()
            finally:
                self._waiting -= 1
        started = time.perf_counter()
        try:
            if self.timeout is None:
                result = await self.inner.send(message)
            else:
                async with asyncio.timeout(self.timeout):
                    result = await self.inner.send(message)
        except Exception as exc:  # noqa: BLE001 — a timeout or an adapter bug must not lose the message
            result = raised(exc, limit=self.timeout, adapter=self.provider)
        self.stats.observe(message.channel, self.provider, _outcome(result), time.perf_counter() - started)
        return result

    async def send_many(self, messages: list[Message]) -> list[SendResult]:
        """`send` for a batch: its tokens taken together, one timeout around the one call."""
        if self.pacer is not None:
            self._waiting += len(messages)
            try:
                await self.pacer.take(len(messages))
            finally:
                self._waiting -= len(messages)
        started = time.perf_counter()
        try:
            if self.timeout is None:
                results = await send_many(self.inner, messages)
            else:
                async with asyncio.timeout(self.timeout):
                    results = await send_many(self.inner, messages)
            if len(results) != len(messages):
                raise RuntimeError(f"{len(messages)} messages answered with {len(results)} results")
        except Exception as exc:  # noqa: BLE001 — a timeout or an adapter bug must not lose the messages
            results = [raised(exc, limit=self.timeout, adapter=self.provider)] * len(messages)
        seconds = time.perf_counter() - started
        for message, result in zip(messages, results, strict=True):
            self.stats.observe(message.channel, self.provider, _outcome(result), seconds)
        return results

    async def aclose(self) -> None:
        await self.inner.aclose()
        await self.stats.flush()
