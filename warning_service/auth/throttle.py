"""Failed-login throttle per client address and per username (Redis when configured, else in-process).

Fixed windows of `window_seconds`. Only failures are counted; a caller over either limit is refused with 429
before any password is hashed, so guessing costs the attacker time and costs the server nothing. The
per-username limit stops a distributed guess at one account; the per-address limit stops one host sweeping
many accounts (it is higher: a county office sits behind one NAT address).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from warning_service.auth.models import User
from warning_service.auth.service import authenticate
from warning_service.db import Database
from warning_service.errors import DomainError
from warning_service.logging import get_logger

log = get_logger(__name__)
_MAX_KEYS = 50_000


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0


class LoginThrottle:
    def __init__(self, *, per_username: int, per_address: int, window_seconds: int, redis: Any | None = None,
                 prefix: str = "ws:login") -> None:
        self.limits = {"user": per_username, "addr": per_address}
        self.window = window_seconds
        self.redis = redis
        self.prefix = prefix
        self._local: dict[str, int] = {}

    def _keys(self, address: str, username: str, now: datetime) -> dict[str, str]:
        slot = int(now.timestamp() // self.window)
        # Usernames are hashed: the keys must not become a list of names people typed.
        user = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
        return {"user": f"{self.prefix}:user:{user}:{slot}", "addr": f"{self.prefix}:addr:{address}:{slot}"}

    def _retry_after(self, now: datetime) -> int:
        return max(1, self.window - int(now.timestamp()) % self.window)

    async def check(self, *, address: str, username: str, now: datetime) -> Verdict:
        """May this address try this username now?"""
        keys = self._keys(address, username, now)
        counts = await self._get(list(keys.values()))
        for (kind, _), count in zip(keys.items(), counts, strict=True):
            if count >= self.limits[kind]:
                return Verdict(False, self._retry_after(now))
        return Verdict(True)

    async def failed(self, *, address: str, username: str, now: datetime) -> None:
        keys = self._keys(address, username, now)
        counts = await self._incr(list(keys.values()))
        for (kind, _), count in zip(keys.items(), counts, strict=True):
            if count == self.limits[kind]:
                log.warning("login_throttled", by=kind, address=address, limit=self.limits[kind],
                            window_seconds=self.window)

    async def succeeded(self, *, address: str, username: str, now: datetime) -> None:
        """A right password clears the username's count (not the address's: one office, many users)."""
        key = self._keys(address, username, now)["user"]
        self._local.pop(key, None)
        if self.redis is not None:
            try:
                await self.redis.delete(key)
            except Exception as exc:  # noqa: BLE001 — Redis down must not stop people logging in
                log.warning("login_throttle_redis_failed", error=f"{type(exc).__name__}: {exc}")

    async def _get(self, keys: list[str]) -> list[int]:
        if self.redis is not None:
            try:
                values = await self.redis.mget(keys)
                return [int(v or 0) for v in values]
            except Exception as exc:  # noqa: BLE001
                log.warning("login_throttle_redis_failed", error=f"{type(exc).__name__}: {exc}")
        return [self._local.get(k, 0) for k in keys]

    async def _incr(self, keys: list[str]) -> list[int]:
        if self.redis is not None:
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    for k in keys:
                        pipe.incr(k)
                        pipe.expire(k, self.window * 2)
                    out = await pipe.execute()
                return [int(c) for c in out[::2]]
            except Exception as exc:  # noqa: BLE001
                log.warning("login_throttle_redis_failed", error=f"{type(exc).__name__}: {exc}")
        if len(self._local) > _MAX_KEYS:
            self._local.clear()  # windows are short; forgetting old counts only ever loosens, never locks out
        for k in keys:
            self._local[k] = self._local.get(k, 0) + 1
        return [self._local[k] for k in keys]


class TooManyAttempts(DomainError):
    status_code = 429
    code = "rate_limited"

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.extra["retry_after"])}


async def throttled_authenticate(db: Database, *, throttle: LoginThrottle, address: str, username: str,
                                 password: str, now: datetime) -> User | None:
    """The user for a right password, None for a wrong one; TooManyAttempts (429) while throttled."""
    verdict = await throttle.check(address=address, username=username, now=now)
    if not verdict.allowed:
        raise TooManyAttempts(f"too many failed logins; try again in {verdict.retry_after} seconds",
                              f"登录失败次数过多,请 {verdict.retry_after} 秒后再试", retry_after=verdict.retry_after)
    user = await authenticate(db, username=username, password=password)
    if user is None:
        await throttle.failed(address=address, username=username, now=now)
    else:
        await throttle.succeeded(address=address, username=username, now=now)
    return user
