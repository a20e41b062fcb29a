"""What a process holds while it runs: database, Redis, clock, settings, channels, limiters, renderer, counters.

Everything is built once at start-up (`build_runtime`) and typed; tests construct a `Runtime` with their own
database, clock and channels and may replace any part (a limiter on a frozen clock, a plain renderer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import Message
from channels.registry import ChannelRegistry
from warning_service.acknowledgment.ratelimit import BadTokenLimiter
from warning_service.auth.throttle import LoginThrottle
from warning_service.clock import Clock
from warning_service.config import Settings
from warning_service.db import Database
from warning_service.delivery.adapters import build_channels
from warning_service.delivery.providers import ProviderStats
from warning_service.delivery.ratelimit import RateLimiter
from warning_service.early_warning import messages
from warning_service.early_warning.policy import PolicyBook, PolicyError, load_policy
from warning_service.offload import Pool
from warning_service.ops import DispatchCounters


class RenderOutbox(Protocol):
    """Renders claimed outbox rows into messages keyed by outbox id (the dispatcher's renderer)."""

    async def __call__(self, session: AsyncSession, *, rows: Sequence[Any], settings: Settings,
                       now: datetime | None = None) -> Mapping[int, Message]: ...


class Runtime:
    """One per process (the API's, or a worker's); every job and request reaches its parts through it."""

    def __init__(self, *, settings: Settings, db: Database, clock: Clock, redis: Redis | None = None,
                 channels: ChannelRegistry | None = None, policy: PolicyBook | None = None,
                 ratelimiter: RateLimiter | None = None, bad_tokens: BadTokenLimiter | None = None,
                 render_outbox: RenderOutbox | None = None, provider_stats: ProviderStats | None = None) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        # None means the in-process fallbacks: each limiter then counts for this process alone.
        self.redis = redis
        self.channels = channels if channels is not None else ChannelRegistry({})
        self.policy = policy if policy is not None else load_policy(None)
        # Outbound pacing per adapter, shared by every worker through Redis.
        self.ratelimiter = ratelimiter if ratelimiter is not None else RateLimiter(redis)
        # Bad acknowledgment tokens per client address per minute.
        self.bad_tokens = bad_tokens if bad_tokens is not None else BadTokenLimiter(
            per_minute=settings.ack_bad_token_per_minute, redis=redis)
        self.render_outbox: RenderOutbox = render_outbox if render_outbox is not None else messages.render_outbox
        # This process's dispatch totals, rendered by /metrics.
        self.counters = DispatchCounters()
        # Per provider: outcomes and latency of every worker (through Redis), rendered by /metrics.
        self.provider_stats = provider_stats if provider_stats is not None else ProviderStats(redis)
        # Failed logins per username and per address, shared through Redis.
        self.login_throttle = LoginThrottle(
            per_username=settings.login_failures_per_username, per_address=settings.login_failures_per_address,
            window_seconds=settings.login_window_seconds, redis=redis)
        # Set while the worker stops, so a long tick ends after its current batch.
        self.stopping = asyncio.Event()
        # Heavy reads in child processes (issue 17): one export per child, then a fresh child; big reports.
        self.export_pool = Pool(workers=settings.export_workers, tasks_per_child=1)
        self.report_pool = Pool(workers=settings.report_pool_workers, tasks_per_child=100)

    async def close(self) -> None:
        self.export_pool.shutdown()
        self.report_pool.shutdown()
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
    redis = aioredis.from_url(settings.redis_url, decode_responses=False) if settings.redis_url else None
    stats = ProviderStats(redis)
    return Runtime(settings=settings, db=db or Database(settings.async_database_url), clock=clock or Clock(),
                   redis=redis, channels=build_channels(settings, redis=redis, stats=stats), policy=policy,
                   provider_stats=stats)
