"""Token buckets per adapter, shared by every worker process through Redis (in-process without it).

A province-wide warning is paced, never rejected: the dispatcher asks for as many tokens as it has
messages, sends what it is granted, and waits for the rest. Grants are taken in bulk so pacing costs one
Redis round trip per grant, not per message.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from warning_service.logging import get_logger

log = get_logger(__name__)

# KEYS[1] bucket; ARGV rate/s, burst, now (s), wanted. Returns {granted, seconds until the next token}.
# The caller's clock is used rather than Redis TIME so tests can freeze it; workers run NTP-synced clocks
# and a clock behind the bucket's is treated as "no time passed", never as negative refill.
TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 60000)
local wait = 0
if granted < want then
  wait = (1 - tokens) / rate
end
return {granted, tostring(wait)}
"""


@dataclass
class _Bucket:
    tokens: float
    ts: float


class RateLimiter:
    """`take(key, want, rate, burst)` → (granted now, seconds until the next token)."""

    def __init__(self, redis: Any | None = None, *, now: Callable[[], float] = time.time,
                 prefix: str = "ws:ratelimit:") -> None:
        self.redis = redis
        self.now = now
        self.prefix = prefix
        self._local: dict[str, _Bucket] = {}
        self._script = redis.register_script(TOKEN_BUCKET_LUA) if redis is not None else None
        self._redis_down_logged = False

    async def take(self, key: str, want: int, rate: float, burst: float) -> tuple[int, float]:
        if want <= 0:
            return 0, 0.0
        if self._script is not None:
            try:
                granted, wait = await self._script(keys=[self.prefix + key],
                                                   args=[rate, burst, self.now(), want])
                self._redis_down_logged = False
                return int(granted), float(wait)
            except Exception as exc:  # noqa: BLE001 — a Redis outage must slow warnings down, not stop them
                if not self._redis_down_logged:
                    log.warning("ratelimit_redis_unavailable", key=key, error=f"{type(exc).__name__}: {exc}")
                    self._redis_down_logged = True
        return self._take_local(key, want, rate, burst)

    def _take_local(self, key: str, want: int, rate: float, burst: float) -> tuple[int, float]:
        now = self.now()
        b = self._local.get(key)
        if b is None:
            b = self._local[key] = _Bucket(burst, now)
        if now > b.ts:
            b.tokens = min(burst, b.tokens + (now - b.ts) * rate)
            b.ts = now
        granted = min(want, math.floor(b.tokens))
        b.tokens -= granted
        return granted, (0.0 if granted == want else (1 - b.tokens) / rate)


def burst_for(rate: float) -> float:
    """One second's worth, at least one message: smooth pacing without starving slow channels."""
    return max(1.0, rate)


def bucket_for(channel: str, adapter: str, limits: dict[str, float]) -> tuple[str, float] | None:
    """The bucket a send draws from: the adapter's own limit if set (e.g. console), else the channel's."""
    for key in (adapter, channel):
        rate = limits.get(key)
        if rate is not None and rate > 0:
            return key, rate
    return None
