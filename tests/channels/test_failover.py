"""Failover between providers of one channel, and the breakers that skip a failing provider."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from channels.base import Message, SendResult, TemplateFields
from channels.breaker import BreakerPolicy, Breakers
from channels.failover import FailoverAdapter
from channels.fake import FakeAdapter
from channels.sms_aliyun import AliyunSmsAdapter, AliyunSmsConfig
from channels.templates import TemplateSet
from tests.delivery.fake_aliyun import ACCESS_KEY_ID, ACCESS_KEY_SECRET, AliyunFault, FakeAliyun, start


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def msg(i: int) -> Message:
    return Message("sms", f"+86139{i:08d}", "text", f"k{i}", metadata={"kind": "alert"},
                   template=TemplateFields(area="城东", hazard="台风", level="红色", reply_code="1", token=f"t{i}"))


@pytest.fixture
async def fake_aliyun() -> AsyncIterator[FakeAliyun]:
    fake = FakeAliyun(templates={"SMS_1": {"area", "hazard", "level", "reply_code", "token"}})
    runner = await start(fake)
    yield fake
    await runner.cleanup()


async def test_first_provider_all_5xx_sends_every_message_through_the_second_none_doubled(fake_aliyun) -> None:
    aliyun = AliyunSmsAdapter(AliyunSmsConfig(
        ACCESS_KEY_ID, ACCESS_KEY_SECRET, "浙江防汛",
        TemplateSet.parse("alert=SMS_1:area,hazard,level,reply_code,token", setting="T", default_max=35),
        endpoint=fake_aliyun.base_url, batch_wait=0.01))
    fake_aliyun.fail_next(*[AliyunFault(status=500)] * 10_000)
    second = FakeAdapter(keep=True)
    failover = FailoverAdapter([("aliyun", aliyun), ("fake", second)],
                               breakers=Breakers(BreakerPolicy(min_calls=10_000)))
    results = await asyncio.gather(*(failover.send(msg(i)) for i in range(300)))
    assert all(r.status != "failed" and r.provider == "fake" for r in results)
    assert sorted(m.idempotency_key for m in second.sent) == sorted(f"k{i}" for i in range(300))
    assert fake_aliyun.sent() == []
    assert failover.counts["aliyun"]["failed_refused"] == 300


async def test_a_timeout_is_not_handed_on_because_the_first_may_have_sent_it() -> None:
    first = FakeAdapter(script=[SendResult.transient("timeout", "no answer")])
    second = FakeAdapter(keep=True)
    r = await FailoverAdapter([("a", first), ("b", second)], breakers=Breakers()).send(msg(1))
    assert (r.status, r.error_code, r.provider) == ("failed", "timeout", "a")
    assert second.sent == []


async def test_a_bad_number_is_final_and_does_not_count_against_the_provider() -> None:
    first = FakeAdapter(script=[SendResult.permanent("aliyun_isv.MOBILE_NUMBER_ILLEGAL", "bad")] * 50)
    second = FakeAdapter(keep=True)
    breakers = Breakers(BreakerPolicy(min_calls=5))
    failover = FailoverAdapter([("a", first), ("b", second)], breakers=breakers)
    for i in range(50):
        assert (await failover.send(msg(i))).status == "failed"
    assert second.sent == [] and not breakers.is_open("a")


async def test_breaker_opens_after_enough_failures_skips_the_provider_and_closes_after_the_cool_down() -> None:
    clock = Clock()
    breakers = Breakers(BreakerPolicy(failure_ratio=0.5, min_calls=10, window_seconds=10, cooldown_seconds=30),
                        clock=clock)
    first = FakeAdapter(script=[SendResult.unavailable("aliyun_ServiceUnavailable", "503")] * 10)
    second = FakeAdapter()
    failover = FailoverAdapter([("a", first), ("b", second)], breakers=breakers)
    for i in range(10):
        await failover.send(msg(i))
    assert breakers.is_open("a") and first.calls == 10
    for i in range(20):
        assert (await failover.send(msg(i))).provider == "b"
    assert first.calls == 10 and failover.counts["a"]["breaker_open"] == 20
    clock.t += 31
    assert (await failover.send(msg(99))).provider == "a"  # healthy again: back to the first choice


async def test_every_breaker_open_means_not_sent_and_retried_later() -> None:
    breakers = Breakers(BreakerPolicy(min_calls=1, cooldown_seconds=60))
    await breakers.record("a", ok=False)
    r = await FailoverAdapter([("a", FakeAdapter())], breakers=breakers).send(msg(1))
    assert (r.status, r.error_code, r.retryable, r.not_sent) == ("failed", "breaker_open", True, True)


async def test_breakers_are_shared_between_workers_through_redis(redis_client) -> None:
    if redis_client is None:
        pytest.skip("needs TEST_REDIS_URL")
    clock = Clock()
    policy = BreakerPolicy(min_calls=10, sync_seconds=0.0, cooldown_seconds=30)
    worker1, worker2 = Breakers(policy, redis=redis_client, clock=clock), Breakers(policy, redis=redis_client,
                                                                                   clock=clock)
    for _ in range(6):
        await worker1.record("aliyun", ok=False)
        await worker2.record("aliyun", ok=False)
    # Neither worker saw ten failures alone; together they did.
    assert not await worker1.allow("aliyun") or not await worker2.allow("aliyun")
    assert not await worker1.allow("aliyun") and not await worker2.allow("aliyun")


async def test_a_batch_refused_by_the_first_provider_goes_whole_to_the_second_none_doubled(fake_aliyun) -> None:
    aliyun = AliyunSmsAdapter(AliyunSmsConfig(
        ACCESS_KEY_ID, ACCESS_KEY_SECRET, "浙江防汛",
        TemplateSet.parse("alert=SMS_1:area,hazard,level,reply_code,token", setting="T", default_max=35),
        endpoint=fake_aliyun.base_url))
    fake_aliyun.fail_next(AliyunFault(status=500))  # the first of the three SendBatchSms calls
    second = FakeAdapter(keep=True)
    breakers = Breakers(BreakerPolicy(min_calls=10_000))
    failover = FailoverAdapter([("aliyun", aliyun), ("fake", second)], breakers=breakers)
    assert failover.max_batch == 100
    results = await failover.send_many([msg(i) for i in range(250)])
    by_provider = [r.provider for r in results]
    assert by_provider.count("aliyun") == 150 and by_provider.count("fake") == 100
    assert all(r.status != "failed" for r in results)
    sent_by_aliyun = [n for _, n, _ in fake_aliyun.sent()]
    sent_by_second = [m.address.removeprefix("+86") for m in second.sent]
    assert len(sent_by_aliyun) == 150 and not set(sent_by_aliyun) & set(sent_by_second)
    assert sorted(sent_by_aliyun + sent_by_second) == sorted(f"139{i:08d}" for i in range(250))
    # Counted per message, as single sends would be: a refused batch of 100 is 100 failures.
    assert failover.counts["aliyun"]["failed_refused"] == 100 and failover.counts["aliyun"]["accepted"] == 150
    assert breakers._local("aliyun").failed == 100 and breakers._local("aliyun").ok == 150


async def test_a_batch_meets_an_open_breaker_like_single_sends_do() -> None:
    breakers = Breakers(BreakerPolicy(min_calls=1, cooldown_seconds=60))
    await breakers.record("a", ok=False)
    second = FakeAdapter(keep=True)
    results = await FailoverAdapter([("a", FakeAdapter()), ("b", second)], breakers=breakers).send_many(
        [msg(i) for i in range(3)])
    assert [r.provider for r in results] == ["b"] * 3 and len(second.sent) == 3
    alone = await FailoverAdapter([("a", FakeAdapter())], breakers=breakers).send_many([msg(1), msg(2)])
    assert [(r.error_code, r.not_sent) for r in alone] == [("breaker_open", True)] * 2
