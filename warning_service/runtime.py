"""What a process holds while it runs: database, Redis, clock, settings, channel adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from warning_service.clock import Clock
from warning_service.config import Settings
from warning_service.db import Database
from warning_service.early_warning.policy import PolicyBook, PolicyError, load_policy


@dataclass
class Runtime:
    settings: Settings
    db: Database
    clock: Clock
    redis: Any | None = None  # redis.asyncio.Redis, or None for the in-process fallbacks
    channels: Any | None = None  # channels.registry.ChannelRegistry
    policy: PolicyBook = field(default_factory=lambda: load_policy(None))
    extras: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        if self.channels is not None and hasattr(self.channels, "aclose"):
            await self.channels.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.dispose()


async def build_runtime(settings: Settings, *, clock: Clock | None = None, db: Database | None = None) -> Runtime:
    """Connect what the settings name; a misconfigured channel stops start-up with a clear message."""
    try:
        policy = load_policy(settings.policy_file)
    except PolicyError as exc:
        raise SystemExit(f"configuration error: {exc}") from None
    redis = None
    if settings.redis_url:
        import redis.asyncio as aioredis

        redis = aioredis.from_url(settings.redis_url, decode_responses=False)
    from warning_service.delivery.adapters import build_channels

    return Runtime(settings=settings, db=db or Database(settings.async_database_url), clock=clock or Clock(),
                   redis=redis, channels=build_channels(settings, redis=redis), policy=policy)
