"""Count bad acknowledgment tokens per client address per minute (Redis when configured, else in-process).

Only bad tokens are counted and only bad tokens are refused: a valid link always works, because mobile
carriers put many phones behind one address and one prober there must not silence a village's answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from warning_service.logging import get_logger

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = get_logger(__name__)
_MAX_KEYS = 50_000


class BadTokenLimiter:
    """Fixed one-minute windows; `hit` records a bad token and says whether the address is over the limit."""

    def __init__(self, *, per_minute: int, redis: Redis | None = None, prefix: str = "ws:ack:bad") -> None:
        self.per_minute = per_minute
        self.redis = redis
        self.prefix = prefix
        self._local: dict[tuple[str, int], int] = {}

    async def hit(self, address: str, now: datetime) -> bool:
        """Count one bad token from `address`; True when it has now exceeded the per-minute limit."""
        minute = int(now.timestamp() // 60)
        count = await self._incr_redis(address, minute) if self.redis is not None else None
        if count is None:
            count = self._incr_local(address, minute)
        over = count > self.per_minute
        if over and count == self.per_minute + 1:
            log.warning("ack_bad_token_limit", address=address, per_minute=self.per_minute)
        return over

    async def _incr_redis(self, address: str, minute: int) -> int | None:
        key = f"{self.prefix}:{address}:{minute}"
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, 120)
                count, _ = await pipe.execute()
            return int(count)
        except Exception as exc:  # noqa: BLE001 — Redis down must not stop people answering
            log.warning("ack_rate_limit_redis_failed", error=f"{type(exc).__name__}: {exc}")
            return None

    def _incr_local(self, address: str, minute: int) -> int:
        if len(self._local) > _MAX_KEYS:
            self._local = {k: v for k, v in self._local.items() if k[1] >= minute}
        key = (address, minute)
        self._local[key] = self._local.get(key, 0) + 1
        return self._local[key]
