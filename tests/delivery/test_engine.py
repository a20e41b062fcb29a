"""The streaming engine in process: a lift seen before the next send, a dead worker's rows put back as soon
as its heartbeat stops, a slow send holding only its own slot."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from sqlalchemy import text

from channels.base import Message, SendResult
from channels.fake import FakeAdapter
from tests.delivery.conftest import issue, outbox, status_counts, use
from warning_service.delivery import store
from warning_service.delivery.dispatcher import Dispatcher, dispatch_tick
from warning_service.runtime import Runtime


class Slow:
    """Takes `seconds` per send (real time); a send to an address in `stuck` waits until released."""

    name = "slow"
    send_timeout = None

    def __init__(self, seconds: float, stuck: frozenset[str] = frozenset()) -> None:
        self.seconds = seconds
        self.stuck = stuck
        self.sent: list[Message] = []
        self.release = asyncio.Event()

    async def send(self, message: Message) -> SendResult:
        if message.address in self.stuck:
            await self.release.wait()
        else:
            await asyncio.sleep(self.seconds)
        self.sent.append(message)
        return SendResult.ok(f"slow-{len(self.sent)}")

    async def aclose(self) -> None:
        return None


class Batchy:
    """Takes up to `max_batch` messages per call (as Aliyun's SendBatchSms does), `seconds` per call; counts
    the messages in its hands at once."""

    name = "batchy"
    send_timeout = None

    def __init__(self, max_batch: int, seconds: float) -> None:
        self.max_batch = max_batch
        self.seconds = seconds
        self.sent: list[Message] = []
        self.batches: list[int] = []
        self.holding = 0
        self.most_held = 0

    async def send(self, message: Message) -> SendResult:
        return (await self.send_many([message]))[0]

    async def send_many(self, messages: list[Message]) -> list[SendResult]:
        self.batches.append(len(messages))
        self.holding += len(messages)
        self.most_held = max(self.most_held, self.holding)
        await asyncio.sleep(self.seconds)
        self.holding -= len(messages)
        self.sent.extend(messages)
        return [SendResult.ok(f"batchy-{len(self.sent) - len(messages) + i}") for i in range(len(messages))]

    async def aclose(self) -> None:
        return None


async def wait_for(predicate, *, deadline: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not await predicate():
        assert loop.time() < end, "not reached in time"
        await asyncio.sleep(0.01)


async def test_a_lift_mid_dispatch_stops_the_alerts_not_yet_sent_within_a_second(client, duty, db, runtime):
    runtime.settings.channel_concurrency = 1
    wid = await issue(client, duty, targets=["331081"])
    slow = Slow(0.05)
    use(runtime, slow)
    engine = Dispatcher(runtime)
    task = asyncio.create_task(engine.run(drain=True))

    async def three_sent() -> bool:
        return len(slow.sent) >= 3

    await wait_for(three_sent)
    r = await client.post(f"/api/v1/warnings/{wid}/lift", headers=duty, json={"reason": "台风转向"})
    assert r.status_code == 200, r.text
    lifted_at = len(slow.sent)
    await asyncio.wait_for(task, 30)
    alerts_after = [m for m in slow.sent[lifted_at:] if m.metadata.get("kind") == "alert"]
    # At most what was already handed over plus one re-check interval's worth at one send per 50 ms.
    assert len(alerts_after) <= 3 * 20 // 2 and len(alerts_after) < 12
    cancelled = [m for m in await outbox(db, warning_id=wid, status="cancelled") if m.kind == "alert"]
    assert cancelled and {m.error_code for m in cancelled} <= {"warning_lifted", "lifted"}, \
        {m.error_code for m in cancelled}
    assert "sending" not in await status_counts(db, wid) and "queued" not in await status_counts(db, wid)


async def test_a_dead_workers_rows_go_back_as_soon_as_its_heartbeat_stops(client, duty, db, runtime, clock,
                                                                           console):
    wid = await issue(client, duty, targets=["331081"])
    total = len(await outbox(db, warning_id=wid))
    now = clock.now()
    async with db.session() as s:  # a worker registered, claimed everything with a long lease, then died
        await store.register_worker(s, worker="dead:1:x", host="h", pid=1, now=now)
        await store.claim(s, now=now, lease_until=now + timedelta(seconds=runtime.settings.dispatch_lease_seconds),
                          batch_size=1000, worker="dead:1:x")
    assert (await status_counts(db, wid)) == {"sending": total}
    clock.advance(runtime.settings.dispatch_worker_gone_seconds + 1)  # well inside the lease
    await dispatch_tick(runtime)
    assert (await status_counts(db, wid)) == {"delivered": total}
    assert Counter(m.idempotency_key for m in console.sent) == {m.idempotency_key: 1
                                                               for m in await outbox(db, warning_id=wid)}


async def test_a_send_that_hangs_holds_only_its_own_slot(client, duty, db, runtime: Runtime):
    runtime.settings.channel_concurrency = 3
    wid = await issue(client, duty, targets=["331081"])
    sms = await outbox(db, warning_id=wid, channel="sms")
    slow = Slow(0.0, stuck=frozenset({sms[0].address}))
    use(runtime, slow)
    task = asyncio.create_task(dispatch_tick(runtime))

    async def all_but_one() -> bool:
        return (await status_counts(db, wid)).get("sent", 0) == len(await outbox(db, warning_id=wid)) - 1

    await wait_for(all_but_one)  # everything else went past the stuck send, and was recorded
    assert (await status_counts(db, wid)).get("sending") == 1
    slow.release.set()
    await asyncio.wait_for(task, 30)
    assert set(await status_counts(db, wid)) == {"sent"}


async def test_a_batch_adapter_gets_whole_batches_never_more_in_hand_than_the_concurrency_each_message_once(
        client, duty, db, runtime: Runtime):
    runtime.settings.channel_concurrency = 25
    wid = await issue(client, duty, targets=["331081"])
    total = len(await outbox(db, warning_id=wid))
    batchy = Batchy(max_batch=10, seconds=0.02)
    use(runtime, batchy)
    await asyncio.wait_for(dispatch_tick(runtime), 60)
    assert set(await status_counts(db, wid)) == {"sent"}
    assert Counter(m.idempotency_key for m in batchy.sent) == {m.idempotency_key: 1
                                                              for m in await outbox(db, warning_id=wid)}
    assert max(batchy.batches) == 10 and sum(batchy.batches) == total
    assert len(batchy.batches) < total / 3  # batches, not single sends
    assert batchy.most_held <= 25  # what a crash could double stays within CHANNEL_CONCURRENCY


async def test_a_lift_mid_dispatch_stops_the_batches_not_yet_sent(client, duty, db, runtime):
    runtime.settings.channel_concurrency = 5  # one sender of batches of 5
    wid = await issue(client, duty, targets=["331081"])
    batchy = Batchy(max_batch=5, seconds=0.2)
    use(runtime, batchy)
    task = asyncio.create_task(Dispatcher(runtime).run(drain=True))

    async def first_batches() -> bool:
        return len(batchy.sent) >= 5

    await wait_for(first_batches)
    r = await client.post(f"/api/v1/warnings/{wid}/lift", headers=duty, json={"reason": "台风转向"})
    assert r.status_code == 200, r.text
    lifted_at = len(batchy.sent)
    await asyncio.wait_for(task, 30)
    alerts_after = [m for m in batchy.sent[lifted_at:] if m.metadata.get("kind") == "alert"]
    # What each channel's sender had in hand, plus at most one re-check interval (0.5 s) of batches of 5
    # every 200 ms on each of the four channels.
    assert len(alerts_after) <= 4 * (5 + 5 * 3)
    cancelled = [m for m in await outbox(db, warning_id=wid, status="cancelled") if m.kind == "alert"]
    assert cancelled and {m.error_code for m in cancelled} <= {"warning_lifted", "lifted"}
    assert "sending" not in await status_counts(db, wid) and "queued" not in await status_counts(db, wid)


async def test_a_worker_that_cannot_beat_sends_nothing_more_and_leaves_what_others_took(client, duty, db, runtime,
                                                                                         clock):
    runtime.settings.channel_concurrency = 1
    runtime.settings.dispatch_heartbeat_seconds = 0.25
    runtime.settings.dispatch_worker_gone_seconds = 1.5  # fenced 0.9 s after its last good beat
    await issue(client, duty, targets=["331081"])
    slow = Slow(0.3)
    use(runtime, slow)
    engine = Dispatcher(runtime)
    unreachable = asyncio.Event()
    beat = engine._beat

    async def beat_unless_unreachable() -> None:
        if unreachable.is_set():
            raise ConnectionError("database unreachable for the heartbeat")
        await beat()

    engine._beat = beat_unless_unreachable  # type: ignore[method-assign]
    task = asyncio.create_task(engine.run(drain=True))

    async def some_sent() -> bool:
        return len(slow.sent) >= 3

    await wait_for(some_sent)
    unreachable.set()

    async def fenced() -> bool:
        return not engine._beat_fresh() and engine.in_flight == 0

    await wait_for(fenced)
    sent_when_fenced = len(slow.sent)
    # Meanwhile another worker judges this one gone and takes everything it held.
    later = clock.now() + timedelta(seconds=60)
    async with db.session() as s:
        await store.register_worker(s, worker="other:2:y", host="h", pid=2, now=later)
        await store.reclaim_expired(s, now=later, max_attempts=5, adapters={}, me="other:2:y", gone_before=later)
        taken = {r.id for r in await store.claim(s, now=later, lease_until=later + timedelta(seconds=600),
                                                 batch_size=10_000, worker="other:2:y")}
    assert taken
    await asyncio.sleep(0.3)  # fenced: nothing more goes while the heartbeat fails
    assert len(slow.sent) == sent_when_fenced
    unreachable.clear()
    await asyncio.wait_for(task, 30)
    sent_ids = [int(m.metadata["outbox_id"]) for m in slow.sent]
    assert not set(sent_ids[sent_when_fenced:]) & taken  # what the other worker took, only it sends
    assert len(sent_ids) == len(set(sent_ids))


async def test_a_render_whose_statement_fails_still_sends_the_plain_text_and_keeps_the_claim(client, duty, db,
                                                                                          runtime):
    """A render whose SQL fails undoes no claim and stops no message: they go as the plain fallback."""
    wid = await issue(client, duty, targets=["331081001"])
    fake = FakeAdapter(keep=True)
    use(runtime, fake)

    async def failing_render(session, **_):
        await session.execute(text("SELECT 1 / 0"))  # fails, and aborts the transaction it runs in

    runtime.render_outbox = failing_render  # type: ignore[assignment]
    await Dispatcher(runtime).run(drain=True)
    total = len(await outbox(db, warning_id=wid))
    assert len(fake.sent) == total and all(m.body.startswith("【预警】") for m in fake.sent)
    assert await status_counts(db, wid) == {"delivered": total}
