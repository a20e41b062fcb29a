"""Per-provider rate limits, readiness per provider breaker, and per-provider figures in /metrics.

Run with TEST_REDIS_URL the "workers" share buckets, breakers and figures through a real Redis; without it
each object counts in process (one process's view), which the same tests check.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from channels.base import Message, SendResult
from channels.breaker import BreakerPolicy, Breakers
from channels.fake import FakeAdapter
from channels.registry import ChannelRegistry, build
from tests.conftest import REDIS_KEYSPACE, make_settings
from warning_service.delivery.adapters import build_channels
from warning_service.delivery.providers import ProviderGate, ProviderStats
from warning_service.delivery.ratelimit import RateLimiter


class Now:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def sms(i: int) -> Message:
    return Message("sms", f"+86139{i:08d}", "text", f"k{i}")


async def until(predicate, *, within: float = 5.0) -> None:
    """Let the loop run until `predicate()` holds (never a fixed sleep)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


def stats_for(redis_client) -> ProviderStats:
    return ProviderStats(redis_client, prefix=REDIS_KEYSPACE + "provider:")


async def test_a_provider_rate_limit_is_shared_by_every_worker(redis_client) -> None:
    """Two workers, one provider at 10/s: together they get 10 sends per second of the shared clock, not 20
    (in process, without Redis, a single worker's gate keeps the same pace)."""
    now = Now()
    limiter = RateLimiter(redis_client, now=now, prefix=REDIS_KEYSPACE + "ratelimit:")
    inner = FakeAdapter(keep=True)
    stats = stats_for(redis_client)
    workers = [ProviderGate(inner, provider="aliyun", stats=stats, limiter=limiter, rate=10.0)
               for _ in range(2 if redis_client is not None else 1)]
    sends = [asyncio.create_task(workers[i % len(workers)].send(sms(i))) for i in range(25)]
    await until(lambda: len(inner.sent) == 10)  # the first second's burst
    per_second = [10]
    while len(inner.sent) < 25:
        before = len(inner.sent)
        await asyncio.sleep(0.2)  # the pacers retry every 0.1 s: the clock stands, nothing more may go
        per_second.append(len(inner.sent) - before)
        now.t += 1.0
    results = await asyncio.gather(*sends)
    assert max(per_second) <= 10 and len(per_second) >= 3, per_second  # 25 at 10/s: three seconds, never 20/s
    assert all(r.status == "delivered" for r in results)


async def test_a_provider_without_a_limit_is_not_paced_and_its_own_timeout_bounds_only_the_call() -> None:
    class Hangs(FakeAdapter):
        send_timeout = 0.05

        async def send(self, message: Message) -> SendResult:
            await asyncio.sleep(10)
            return SendResult.ok("never")

    gate = ProviderGate(Hangs(), provider="twilio", stats=ProviderStats(None))
    r = await gate.send(sms(1))
    assert (r.status, r.error_code, r.not_sent) == ("failed", "timeout", False)
    assert gate.send_timeout is None  # the dispatcher's watchdog never cuts a wait for a token


class Batches(FakeAdapter):
    """A provider that takes 10 messages per call."""

    max_batch = 10

    def __init__(self, **kw) -> None:
        super().__init__(keep=True, **kw)
        self.batches: list[int] = []

    async def send_many(self, messages: list[Message]) -> list[SendResult]:
        self.batches.append(len(messages))
        return [await self.send(m) for m in messages]


async def test_a_batch_takes_one_token_per_message_and_counts_each_message() -> None:
    now = Now()
    inner = Batches()
    stats = ProviderStats(None)
    gate = ProviderGate(inner, provider="aliyun", stats=stats, limiter=RateLimiter(None, now=now), rate=10.0)
    assert gate.max_batch == 10
    first = await gate.send_many([sms(i) for i in range(10)])  # the first second's ten tokens
    assert [r.status for r in first] == ["delivered"] * 10
    second = asyncio.create_task(gate.send_many([sms(i) for i in range(10, 15)]))
    await asyncio.sleep(0.2)  # the clock stands: no token, the batch waits whole
    assert not second.done() and len(inner.sent) == 10
    now.t += 1.0
    assert len(await asyncio.wait_for(second, 5)) == 5 and inner.batches == [10, 5]
    figures = (await stats.totals([("sms", "aliyun")]))[("sms", "aliyun")]
    assert figures.counts["accepted"] == 15


async def test_a_batch_that_hangs_times_out_as_a_whole_and_is_not_passed_on() -> None:
    class Hangs(Batches):
        send_timeout = 0.05

        async def send_many(self, messages: list[Message]) -> list[SendResult]:
            await asyncio.sleep(10)
            return []

    results = await ProviderGate(Hangs(), provider="aliyun", stats=ProviderStats(None)).send_many(
        [sms(1), sms(2)])
    assert [(r.error_code, r.not_sent) for r in results] == [("timeout", False)] * 2


def test_provider_rate_limits_are_settings_and_bad_ones_stop_start_up(db) -> None:
    s = make_settings(db, channel_adapters="sms=fake,console", provider_rate_limits="fake=5000, console=100")
    assert s.provider_limits() == {"fake": 5000.0, "console": 100.0}
    for raw, reason in (("fake=fast", "not a number"), ("fake=0", "must be > 0"), ("fake", "name=value")):
        with pytest.raises(ValueError, match=reason):
            make_settings(db, provider_rate_limits=raw)
    with pytest.raises(SystemExit, match="PROVIDER_RATE_LIMITS names aliyun"):
        build_channels(make_settings(db, channel_adapters="sms=fake", provider_rate_limits="aliyun=10"))


async def test_every_provider_of_a_chain_gets_its_own_gate_and_limit(db) -> None:
    reg = build_channels(make_settings(db, channel_adapters="sms=fake,console,email=console",
                                       provider_rate_limits="fake=5000"))
    try:
        chain = reg.get("sms")
        gates = dict(chain.providers)  # type: ignore[attr-defined]
        assert isinstance(gates["fake"], ProviderGate) and gates["fake"].rate == 5000.0
        assert gates["console"].rate is None and gates["console"] is reg.get("email")  # one gate per provider
        assert reg.providers() == {"broadcast": ["console"], "email": ["console"], "sms": ["fake", "console"],
                                   "voice": ["console"]}
    finally:
        await reg.aclose()


def chained_registry(breakers: Breakers, stats: ProviderStats) -> ChannelRegistry:
    """sms = fake, then console (a failover chain); email = console alone."""
    return build({"sms": "fake,console", "email": "console"}, {"console_echo": False}, breakers=breakers,
                 wrap=lambda name, a: ProviderGate(a, provider=name, stats=stats), on_skip=stats.skipped)


@pytest.fixture
def policy() -> BreakerPolicy:
    return BreakerPolicy(min_calls=1, failure_ratio=0.5, cooldown_seconds=60, sync_seconds=0.0)


async def test_readyz_names_an_open_provider_as_degraded_and_fails_only_when_the_whole_chain_is_open(
        client, runtime, redis_client, policy) -> None:
    prefix = REDIS_KEYSPACE + "breaker:"
    api = Breakers(policy, redis=redis_client, prefix=prefix)
    runtime.channels = chained_registry(api, stats_for(redis_client))
    r = await client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert r.json()["providers"] == {"email": {"console": "no_breaker"}, "sms": {"fake": "closed", "console": "closed"}}

    # A worker (another process with Redis; this one without) sees the first provider fail.
    worker = Breakers(policy, redis=redis_client, prefix=prefix) if redis_client is not None else api
    await worker.record("fake", ok=False)
    await worker.allow("fake")
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "degraded" and r.json()["providers"]["sms"]["fake"] == "open"
    assert r.json()["degraded"] == ["sms: breaker open for fake; messages go to console"]

    await worker.record("console", ok=False)
    await worker.allow("console")
    r = await client.get("/readyz")
    assert r.status_code == 503 and r.json()["status"] == "unavailable"
    assert "every provider's breaker is open (fake, console)" in r.json()["providers_down"][0]


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    assert m, f"{name}{{{want}}} not in /metrics"
    return float(m.group(1))


async def test_metrics_show_each_providers_outcomes_latency_and_breaker_from_every_worker(
        client, runtime, redis_client, policy) -> None:
    prefix = REDIS_KEYSPACE + "breaker:"
    api_stats = runtime.provider_stats = stats_for(redis_client)
    runtime.channels = chained_registry(Breakers(policy, redis=redis_client, prefix=prefix), api_stats)
    # Two workers' registries (with Redis each has its own figures, added up in Redis; without, one process).
    workers = [chained_registry(Breakers(BreakerPolicy(min_calls=3, failure_ratio=1.0, cooldown_seconds=60,
                                                       sync_seconds=0.0), redis=redis_client, prefix=prefix),
                                stats_for(redis_client) if redis_client is not None else api_stats)
               for _ in range(2)]
    first = dict(workers[0].get("sms").providers)["fake"].inner  # type: ignore[attr-defined]
    first.script.extend([SendResult.unavailable("aliyun_500", "down")] * 3)
    for w in workers:
        for i in range(4):
            await w.get("sms").send(sms(i))
    for w in workers:
        await w.aclose()  # flushes each worker's figures
    text = (await client.get("/metrics")).text
    sms_fake, sms_console = {"channel": "sms", "provider": "fake"}, {"channel": "sms", "provider": "console"}
    # Worker 1: 3 refused by fake, failed over to console, which took them; its 4th message skipped fake
    # (breaker open after 3 failures) and went to console. Worker 2 sees the open breaker through Redis; in
    # process the second "worker" has its own breaker, so fake takes its 4 messages.
    shared = redis_client is not None
    assert metric(text, "warning_service_provider_messages_total", **sms_fake, outcome="not_sent") == 3
    assert metric(text, "warning_service_provider_messages_total", **sms_fake, outcome="breaker_open") == \
        (5 if shared else 1)
    assert metric(text, "warning_service_provider_messages_total", **sms_fake, outcome="accepted") == \
        (0 if shared else 4)
    assert metric(text, "warning_service_provider_messages_total", **sms_console, outcome="accepted") == \
        (8 if shared else 4)
    assert metric(text, "warning_service_provider_send_seconds_count", **sms_console) == (8 if shared else 4)
    assert metric(text, "warning_service_provider_send_seconds_bucket", **sms_console, le="0.05") == \
        (8 if shared else 4)
    assert metric(text, "warning_service_provider_breaker_open", **sms_fake) == (1 if shared else 0)
    assert "# TYPE warning_service_provider_send_seconds histogram" in text
