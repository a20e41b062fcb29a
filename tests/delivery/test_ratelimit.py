"""Pacing: token buckets shared through Redis by every dispatcher, in-process without Redis."""

from __future__ import annotations

import asyncio

import pytest

from channels.fake import FakeAdapter
from channels.registry import ChannelRegistry
from tests.conftest import REDIS_KEYSPACE, REDIS_URL, make_settings
from tests.delivery.conftest import issue, outbox, status_counts, use
from warning_service.delivery.dispatcher import dispatch_once
from warning_service.delivery.ratelimit import RateLimiter
from warning_service.runtime import Runtime

needs_redis = pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL not set")


class FrozenTime:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


async def _redis():
    import redis.asyncio as aioredis

    return aioredis.from_url(REDIS_URL)


@needs_redis
async def test_two_limiters_on_separate_connections_share_one_bucket(redis_client) -> None:
    now = FrozenTime()
    other = await _redis()
    try:
        prefix = REDIS_KEYSPACE + "ratelimit:"
        a, b = RateLimiter(redis_client, now=now, prefix=prefix), RateLimiter(other, now=now, prefix=prefix)
        got = [await lim.take("sms", 4, rate=10, burst=10) for lim in (a, b, a)]
        assert [g for g, _ in got] == [4, 4, 2]
        granted, wait = await b.take("sms", 5, rate=10, burst=10)
        assert (granted, wait) == (0, pytest.approx(0.1))
        now.t += 0.5  # half a second refills five tokens, whoever asks
        assert (await b.take("sms", 9, rate=10, burst=10))[0] == 5
        assert (await a.take("sms", 1, rate=10, burst=10))[0] == 0
    finally:
        await other.aclose()


async def test_in_process_bucket_paces_without_redis() -> None:
    now = FrozenTime()
    lim = RateLimiter(None, now=now)
    assert (await lim.take("voice", 100, rate=2, burst=2))[0] == 2
    assert (await lim.take("voice", 100, rate=2, burst=2)) == (0, pytest.approx(0.5))
    now.t += 1.5
    assert (await lim.take("voice", 100, rate=2, burst=2))[0] == 2  # capped at the burst
    now.t -= 10  # a clock stepping back grants nothing extra
    assert (await lim.take("voice", 1, rate=2, burst=2))[0] == 0


async def test_a_dead_redis_slows_to_the_in_process_bucket_instead_of_stopping() -> None:
    import redis.asyncio as aioredis

    dead = aioredis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.2)
    try:
        lim = RateLimiter(dead, now=FrozenTime())
        assert (await lim.take("sms", 3, rate=5, burst=5))[0] == 3
    finally:
        await dead.aclose()


@needs_redis
async def test_two_dispatchers_together_send_no_more_than_the_shared_rate(client, duty, db, clock,
                                                                          redis_client) -> None:
    settings = make_settings(db, channel_rate_limits="sms=3,email=1000,broadcast=1000")
    wid = await issue(client, duty, targets=["331081"])  # 11 SMS
    sms_total = len(await outbox(db, warning_id=wid, channel="sms"))
    now = FrozenTime()
    fakes, runtimes, conns = [], [], []
    for _ in range(2):
        conn = await _redis()
        fake = FakeAdapter(keep=True)
        rt = Runtime(settings=settings, db=db, clock=clock, redis=conn,
                     channels=ChannelRegistry({c: fake for c in ("sms", "voice", "email", "broadcast")}),
                     ratelimiter=RateLimiter(conn, now=now, prefix=REDIS_KEYSPACE + "ratelimit:"))
        fakes.append(fake)
        runtimes.append(rt)
        conns.append(conn)
    try:
        # each claims half the queue; time stands still, so only the burst of 3 SMS may go between them
        await asyncio.gather(*(dispatch_once(rt, batch_size=10, pace_budget=0) for rt in runtimes))
        sms_sent = sum(1 for f in fakes for m in f.sent if m.channel == "sms")
        assert sms_sent == 3
        held = await outbox(db, warning_id=wid, channel="sms", status="queued")
        assert len(held) == sms_total - 3 and all(m.attempts == 0 for m in held)  # paced, not failed
        for second in range(1, 4):  # each second refills three, shared by both
            now.t += 1.0
            await asyncio.gather(*(dispatch_once(rt, batch_size=100, pace_budget=0) for rt in runtimes))
            assert sum(1 for f in fakes for m in f.sent if m.channel == "sms") == min(sms_total, 3 + 3 * second)
        assert set(await status_counts(db, wid)) == {"delivered"}
    finally:
        for c in conns:
            await c.aclose()


async def test_a_paced_batch_waits_for_tokens_within_its_budget(client, duty, db, runtime) -> None:
    runtime.settings.channel_rate_limits = "sms=50,email=1000,broadcast=1000"
    runtime.ratelimiter = RateLimiter(None)  # real time, in-process
    fake = FakeAdapter()
    use(runtime, fake)
    wid = await issue(client, duty, targets=["331081"])  # 11 SMS: 50 burst covers them at once
    await dispatch_once(runtime, batch_size=100, pace_budget=5)
    assert set(await status_counts(db, wid)) == {"delivered"}
