"""Circuit breakers per provider, shared by every worker through Redis (in-process without it).

A provider that refuses most of what it is given (5xx, throttling, connection refused) is skipped for a
cool-down instead of costing each message a failed call first. Counting is per time window: the breaker opens
when a window holds at least `min_calls` outcomes and the share of failures reaches `failure_ratio`. Each
process counts locally and adds its counts to Redis at most every `sync_seconds`, so a burst of 5,000 sends per
second costs a few Redis round trips, not one per send; the open state is read back on the same round trip.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KEY_PREFIX = "ws:breaker:"


@dataclass(frozen=True)
class BreakerPolicy:
    failure_ratio: float = 0.5
    min_calls: int = 20
    window_seconds: float = 10.0
    cooldown_seconds: float = 30.0
    sync_seconds: float = 0.5


@dataclass
class _Local:
    ok: int = 0
    failed: int = 0
    window: int = -1
    open_until: float = 0.0
    synced_at: float = 0.0
    window_ok: int = 0  # this window's totals as last seen (all processes when shared)
    window_failed: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Breakers:
    """`allow(provider)` before a send, `record(provider, ok=…)` after it."""

    def __init__(self, policy: BreakerPolicy | None = None, *, redis: Any | None = None,
                 clock: Callable[[], float] = time.time, prefix: str = KEY_PREFIX) -> None:
        self.policy = policy or BreakerPolicy()
        self.redis = redis
        self.clock = clock
        self.prefix = prefix
        self._state: dict[str, _Local] = {}
        self.opened: dict[str, int] = {}  # provider → times this process saw it open (metrics)

    def _local(self, provider: str) -> _Local:
        s = self._state.get(provider)
        if s is None:
            s = self._state[provider] = _Local()
        return s

    def is_open(self, provider: str) -> bool:
        return self.clock() < self._local(provider).open_until

    async def allow(self, provider: str) -> bool:
        await self._maybe_sync(provider)
        return not self.is_open(provider)

    async def record(self, provider: str, *, ok: bool, count: int = 1) -> None:
        """`count` outcomes alike (a batch call's messages count one by one, as single sends would)."""
        if count <= 0:
            return
        s = self._local(provider)
        self._roll(s)
        if ok:
            s.ok += count
        else:
            s.failed += count
        if self.redis is None:
            s.window_ok, s.window_failed = s.window_ok + ok * count, s.window_failed + (not ok) * count
            self._judge(provider, s)
        elif not ok:
            await self._maybe_sync(provider)

    def _roll(self, s: _Local) -> None:
        window = int(self.clock() // self.policy.window_seconds)
        if window != s.window:
            s.window, s.window_ok, s.window_failed = window, 0, 0
            if self.redis is None:
                s.ok = s.failed = 0

    def _judge(self, provider: str, s: _Local) -> bool:
        total = s.window_ok + s.window_failed
        p = self.policy
        if total >= p.min_calls and s.window_failed / total >= p.failure_ratio and not self.is_open(provider):
            s.open_until = self.clock() + p.cooldown_seconds
            self.opened[provider] = self.opened.get(provider, 0) + 1
            # A fresh window after the cool-down: the old failures must not reopen it at once.
            s.window_ok = s.window_failed = 0
            return True
        return False

    async def _maybe_sync(self, provider: str) -> None:
        if self.redis is None:
            return
        s = self._local(provider)
        now = self.clock()
        if now - s.synced_at < self.policy.sync_seconds or s.lock.locked():
            return
        async with s.lock:
            s.synced_at = now
            self._roll(s)
            ok, failed, s.ok, s.failed = s.ok, s.failed, 0, 0
            base = f"{self.prefix}{provider}"
            counts = f"{base}:w{s.window}"
            try:
                pipe = self.redis.pipeline(transaction=False)
                pipe.hincrby(counts, "ok", ok)
                pipe.hincrby(counts, "failed", failed)
                pipe.expire(counts, int(self.policy.window_seconds * 3) + 1)
                pipe.pttl(f"{base}:open")
                _, _, _, ttl = await pipe.execute()
                totals = await self.redis.hmget(counts, "ok", "failed")
            except Exception:  # noqa: BLE001 — Redis down: judge on this process's counts alone
                s.window_ok, s.window_failed = s.window_ok + ok, s.window_failed + failed
                self._judge(provider, s)
                return
            s.window_ok, s.window_failed = int(totals[0] or 0), int(totals[1] or 0)
            if ttl and ttl > 0:
                s.open_until = max(s.open_until, now + ttl / 1000)
            elif self._judge(provider, s):
                try:
                    # Only one process opens it; the others read the key on their next sync.
                    await self.redis.set(f"{base}:open", b"1", px=int(self.policy.cooldown_seconds * 1000), nx=True)
                    await self.redis.delete(counts)
                except Exception:  # noqa: BLE001
                    pass

    def state(self) -> dict[str, str]:
        return {p: ("open" if self.is_open(p) else "closed") for p in self._state}

    async def refresh(self, providers: list[str]) -> dict[str, bool]:
        """provider → open, as every worker sees it: a process that sends nothing (the API answering
        /readyz) reads the shared open keys instead of its own, idle counts. Redis down: this process's view."""
        if self.redis is not None and providers:
            try:
                pipe = self.redis.pipeline(transaction=False)
                for p in providers:
                    pipe.pttl(f"{self.prefix}{p}:open")
                ttls = await pipe.execute()
            except Exception:  # noqa: BLE001 — readiness reports what this process knows
                ttls = [None] * len(providers)
            now = self.clock()
            for p, ttl in zip(providers, ttls, strict=True):
                if ttl and ttl > 0:
                    s = self._local(p)
                    s.open_until = max(s.open_until, now + ttl / 1000)
        return {p: self.is_open(p) for p in providers}
