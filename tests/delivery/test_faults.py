"""Faults: a dispatcher killed mid-batch, a crashed worker's lease, two dispatchers at once, a long queue."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from channels.base import Message, SendResult
from channels.console import ConsoleAdapter
from channels.registry import ChannelRegistry
from tests.conftest import isolate_redis_keys
from tests.delivery.conftest import attempts, issue, outbox, status_counts, use
from warning_service.delivery import store
from warning_service.delivery.dispatcher import dispatch_once, dispatch_tick
from warning_service.runtime import Runtime


class Gate:
    """An adapter that answers the first `free` sends at once and holds the rest until released."""

    name = "gate"

    def __init__(self, free: int) -> None:
        self.free = free
        self.sent: list[Message] = []
        self.waiting = 0
        self.release = asyncio.Event()

    async def send(self, message: Message) -> SendResult:
        self.sent.append(message)
        if len(self.sent) > self.free:
            self.waiting += 1
            await self.release.wait()
        return SendResult.ok(f"gate-{len(self.sent)}")

    async def aclose(self) -> None:
        return None


async def test_dispatcher_cancelled_mid_batch_resumes_without_losing_or_doubling(client, duty, db, runtime,
                                                                                   clock):
    wid = await issue(client, duty, targets=["331081"])  # 11 people × sms + email, 3 villages' broadcast
    total = len(await outbox(db, warning_id=wid))
    runtime.settings.channel_concurrency = 2
    gate = Gate(free=6)
    use(runtime, gate)
    task = asyncio.create_task(dispatch_once(runtime, batch_size=1000))
    async with asyncio.timeout(10):
        while gate.waiting < 3:  # noqa: ASYNC110 — polling the adapter: three channels with sends in flight
            await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    in_flight = {m.idempotency_key for m in gate.sent[6:]}

    counts = await status_counts(db, wid)
    # finished sends were recorded, untouched ones went back to the queue, in-flight ones keep their lease
    assert counts.get("sent") == 6 and counts.get("sending") == len(in_flight)
    assert counts.get("queued") == total - 6 - len(in_flight)
    assert all(m.attempts == 0 for m in await outbox(db, warning_id=wid, status="queued"))

    restarted = ConsoleAdapter(echo=False)
    use(runtime, restarted)
    await dispatch_tick(runtime)
    assert (await status_counts(db, wid)).get("sending") == len(in_flight)  # lease still running
    clock.advance(runtime.settings.dispatch_lease_seconds + 1)
    await dispatch_tick(runtime)

    assert set(await status_counts(db, wid)) <= {"sent", "delivered"}
    sends = Counter(m.idempotency_key for m in gate.sent + restarted.sent)
    assert set(sends) == {m.idempotency_key for m in await outbox(db, warning_id=wid)}
    assert {k for k, n in sends.items() if n > 1} == in_flight  # only in-flight ones went twice
    assert max(sends.values()) == 2
    interrupted = [a for a in await attempts(db) if a.status == "interrupted"]
    assert len(interrupted) == len(in_flight)


async def test_a_worker_that_died_after_claiming_has_its_rows_reclaimed_after_the_lease(client, duty, db,
                                                                                        runtime, clock, console):
    wid = await issue(client, duty, targets=["331081001001"])
    total = len(await outbox(db, warning_id=wid))
    now = clock.now()
    async with db.session() as s:  # the claim commits, then the process is gone
        claimed = await store.claim(s, now=now, lease_until=now + timedelta(seconds=120), batch_size=1000)
    assert len(claimed) == total
    await dispatch_tick(runtime)
    assert console.sent == []
    clock.advance(121)
    await dispatch_tick(runtime)
    assert (await status_counts(db, wid)) == {"delivered": total}
    assert len(console.sent) == total
    assert all(m.attempts == 2 for m in await outbox(db, warning_id=wid))
    assert Counter(a.status for a in await attempts(db)) == {"interrupted": total, "delivered": total}


async def test_a_reclaimed_row_out_of_attempts_fails_visibly(client, duty, db, runtime, clock, console):
    runtime.settings.retry_max_attempts = 1
    wid = await issue(client, duty, targets=["33108100100101"])
    now = clock.now()
    async with db.session() as s:
        await store.claim(s, now=now, lease_until=now + timedelta(seconds=120), batch_size=1000)
    clock.advance(121)
    await dispatch_tick(runtime)
    assert set(await status_counts(db, wid)) == {"failed"}
    assert {m.error_code for m in await outbox(db, warning_id=wid)} == {"lease_expired"}
    assert console.sent == []


async def test_red_goes_before_blue_when_the_queue_is_long(client, duty, db, runtime, console):
    blue = await issue(client, duty, targets=["331081"], level="blue", hazard="rainstorm")
    yellow = await issue(client, duty, targets=["331081"], level="yellow", hazard="rainstorm")
    red = await issue(client, duty, targets=["331081001"], level="red")
    n_red = len(await outbox(db, warning_id=red))
    await dispatch_once(runtime, batch_size=n_red)
    assert set(await status_counts(db, red)) == {"delivered"}
    assert set(await status_counts(db, blue)) == {"queued"} and set(await status_counts(db, yellow)) == {"queued"}
    await dispatch_once(runtime, batch_size=1)
    assert "delivered" in await status_counts(db, yellow) and set(await status_counts(db, blue)) == {"queued"}


async def test_two_dispatchers_at_once_send_each_message_exactly_once(client, duty, db, runtime, settings,
                                                                        clock):
    wid = await issue(client, duty, targets=["331081"])
    total = len(await outbox(db, warning_id=wid))
    a, b = ConsoleAdapter(echo=False), ConsoleAdapter(echo=False)
    other = isolate_redis_keys(Runtime(settings=settings, db=db, clock=clock, redis=runtime.redis,
                               channels=ChannelRegistry({c: b for c in ("sms", "voice", "email", "broadcast")})))
    use(runtime, a)
    await asyncio.gather(*(dispatch_once(rt, batch_size=3) for rt in (runtime, other) for _ in range(8)))
    await dispatch_tick(runtime)
    keys = Counter(m.idempotency_key for m in a.sent + b.sent)
    assert len(keys) == total and max(keys.values()) == 1
    assert (await status_counts(db, wid)) == {"delivered": total}


async def test_a_tick_drains_a_long_queue_in_many_batches_each_message_once(client, duty, db, runtime,
                                                                             console):
    runtime.settings.dispatch_batch_size = 4  # on PostgreSQL the next batch is claimed while one is sent
    wid = await issue(client, duty, targets=["331081"])
    total = len(await outbox(db, warning_id=wid))
    assert await dispatch_tick(runtime) == total
    assert await status_counts(db, wid) == {"delivered": total}
    assert len({m.idempotency_key for m in console.sent}) == len(console.sent) == total


async def test_a_stopped_tick_hands_back_the_batch_it_had_claimed_ahead(client, duty, db, runtime):
    runtime.settings.dispatch_batch_size = 4
    runtime.settings.channel_concurrency = 1
    wid = await issue(client, duty, targets=["331081"])
    gate = Gate(free=0)
    use(runtime, gate)
    task = asyncio.create_task(dispatch_tick(runtime))
    # wait for a send under way and the rows claimed ahead of it (the engine keeps about one pool queued)
    async with asyncio.timeout(10):
        while gate.waiting == 0 or (await status_counts(db, wid)).get("sending", 0) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    counts = await status_counts(db, wid)
    # only the sends actually under way keep their lease; everything claimed but unsent is queued again
    assert counts.get("sending") == gate.waiting
    assert all(m.attempts == 0 for m in await outbox(db, warning_id=wid, status="queued"))
    gate.release.set()
