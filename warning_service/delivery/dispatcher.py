"""The outbox dispatcher: claim due messages, drop those that must no longer go, render, send paced, record.

`Dispatcher` streams: a bounded pool of sends per channel is fed continuously from small claims (no batch
barrier: a slow send holds only its own slot), each result is written by a group commit within milliseconds,
and a send's slot is freed only once its result is in the database — so at any instant at most
`CHANNEL_CONCURRENCY` sends per channel are unrecorded, and that is all a crash can double. The worker
beats every second and renews the leases of what it holds; a worker that stops beating is known gone within
`DISPATCH_WORKER_GONE_SECONDS` and its rows go back to the queue. A worker that cannot beat (its database
stalls, its loop is starved) fences itself: past FENCE_SHARE of that interval without a beat it hands nothing
more to a provider until a beat succeeds, and then leaves the rows others took meanwhile — so being judged
gone while alive doubles at most what was already in flight, as a crash would. A worker judges others only
once it has beaten for a whole gone interval since the database last answered it (when starting: since the
server started), so heartbeats gone stale in a database outage condemn no one and the outage doubles nothing.
Just before each send the warning and notice state is re-read (at most `RECHECK_SECONDS` old), so a lift, an
answer or an expiry stops the messages not yet sent. A reclaimed message goes again with the same idempotency key.

`dispatch_once` is the one-claim form (claim, send all, record) kept for pacing tests and tools.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from channels.base import Message, max_batch
from warning_service.delivery import store
from warning_service.delivery.adapters import adapter_names
from warning_service.delivery.models import AFTER_END_KINDS
from warning_service.delivery.ratelimit import bucket_for, burst_for
from warning_service.delivery.sending import Item, Outcome, StreamPacer, send_all, send_batch, send_one
from warning_service.dialect import in_ids, server_uptime
from warning_service.early_warning.models import EarlyWarning
from warning_service.logging import debug_enabled, get_logger
from warning_service.notice.models import CHASE_KINDS, Notice
from warning_service.runtime import Runtime

log = get_logger(__name__)

# Kinds that only make sense while someone is still silent: drop them once the notice is answered or closed.
SETTLED_NOTICE_STATES = ("acknowledged", "closed")
# A send waits for a state re-check at most this old (a lift or an answer stops it within about a second).
RECHECK_SECONDS = 0.5
# Past this share of DISPATCH_WORKER_GONE_SECONDS without a successful beat, a worker sends nothing more (others
# may soon judge it gone and send its rows): the margin covers a beat under way and the clocks of two hosts.
FENCE_SHARE = 0.6
# The progress line (INFO) is written at most this often, and once when a drain ends.
PROGRESS_EVERY_SECONDS = 5.0


@dataclass
class Batch:
    """Claimed, checked and rendered messages, ready to send before `deadline` (event-loop time)."""

    claimed: int
    cancelled: int
    items: list[Item]
    deadline: float


async def dispatch_tick(rt: Runtime) -> int:
    """Drain every due message through the streaming engine and return how many were claimed (tests, benches,
    one-off runs; the worker runs the same engine continuously with `Dispatcher.run`)."""
    engine = Dispatcher(rt)
    return await engine.run(drain=True)


async def dispatch_once(rt: Runtime, *, batch_size: int, pace_budget: float | None = None) -> int:
    """Claim up to `batch_size` due messages and take each to a final or retry state; returns the count.

    `pace_budget` caps the seconds spent waiting for rate-limit tokens (default half the lease); what
    cannot be sent by then goes back to the queue untouched, so a lease never expires under a paced send.
    """
    batch = await prepare(rt, batch_size=batch_size, pace_budget=pace_budget)
    await deliver(rt, batch)
    return batch.claimed


async def prepare(rt: Runtime, *, batch_size: int, pace_budget: float | None = None) -> Batch:
    """Reclaim expired leases, claim due rows, cancel those that must no longer go, render the rest."""
    s = rt.settings
    now = rt.clock.now()
    budget = s.dispatch_lease_seconds / 2 if pace_budget is None else pace_budget
    deadline = asyncio.get_running_loop().time() + budget
    lease_until = now + timedelta(seconds=s.dispatch_lease_seconds)
    names = adapter_names(s)
    async with rt.db.session() as session:
        reclaimed = await store.reclaim_expired(session, now=now, max_attempts=s.retry_max_attempts,
                                                adapters=names)
        rows = await store.claim(session, now=now, lease_until=lease_until, batch_size=batch_size)
        stale = await _stale(session, rows, now=now)
        if stale:
            await store.cancel(session, rows=[r for r in rows if r.id in stale], reasons=stale, now=now)
    if reclaimed:
        log.warning("dispatch_lease_expired", count=len(reclaimed), outbox_ids=reclaimed[:50])
    live = [r for r in rows if r.id not in stale]
    messages = await _render(rt, live) if live else {}
    limits = s.rate_limits()
    routes: dict[str, tuple[Any, str, tuple[str, float] | None]] = {}
    for channel in {r.channel for r in live}:
        adapter = rt.channels.get(channel)
        name = getattr(adapter, "name", None) or names.get(channel, "console")
        routes[channel] = (adapter, name, bucket_for(channel, name, limits))
    items = [Item(row, messages[row.id], *routes[row.channel]) for row in live]
    return Batch(claimed=len(rows), cancelled=len(stale), items=items, deadline=deadline)


async def deliver(rt: Runtime, batch: Batch) -> None:
    """Send a prepared batch (paced, bounded concurrency) and record every outcome."""
    if not batch.items:
        return
    started = time.monotonic()
    recorder = store.Recorder(rt)
    budget = max(0.0, batch.deadline - asyncio.get_running_loop().time())
    await send_all(batch.items, recorder=recorder, limiter=rt.ratelimiter, burst_for=burst_for,
                   concurrency=rt.settings.channel_concurrency, pace_budget=budget, clock=rt.clock)
    elapsed = time.monotonic() - started
    t = recorder.totals
    log.info("dispatch_batch", warning_ids=sorted({i.row.warning_id for i in batch.items})[:20],
             channels=sorted({i.row.channel for i in batch.items}), claimed=batch.claimed,
             cancelled=batch.cancelled, sent=t["sent"],
             delivered=t["delivered"], retrying=t["retrying"], failed=t["failed"], deferred=t["deferred"],
             segments=t["segments"], seconds=round(elapsed, 3),
             per_second=round(len(batch.items) / elapsed, 1) if elapsed > 0 else None)
    rt.counters.add(t)


async def _stale(session: Any, rows: Sequence[Any], *, now: datetime) -> dict[int, str]:
    """Outbox id → why it must not go: the warning ended (except the lift notice itself), or the
    silence a recall / deputy / escalation message was about has ended."""
    if not rows:
        return {}
    warnings = (await session.execute(
        select(EarlyWarning.id, EarlyWarning.state, EarlyWarning.expires_at)
        .where(EarlyWarning.id.in_({r.warning_id for r in rows})))).all()
    ended: dict[int, str] = {}
    for w in warnings:
        if w.state in ("lifted", "expired"):
            ended[w.id] = f"warning_{w.state}"
        elif w.expires_at is not None and w.expires_at <= now:
            ended[w.id] = "warning_expired"
    watched = {r.notice_id for r in rows if r.kind in CHASE_KINDS and r.notice_id}
    settled: dict[int, str] = {}
    if watched:
        notices = (await session.execute(select(Notice.id, Notice.state, Notice.escalation_of).where(
            in_ids(session, Notice.id, watched)))).all()
        subjects = {n.escalation_of for n in notices if n.escalation_of}
        subject_state = dict((await session.execute(select(Notice.id, Notice.state).where(
            Notice.id.in_(subjects)))).all()) if subjects else {}
        for n in notices:
            if n.state in SETTLED_NOTICE_STATES:
                settled[n.id] = f"notice_{n.state}"
            elif subject_state.get(n.escalation_of) in SETTLED_NOTICE_STATES:
                settled[n.id] = f"silent_notice_{subject_state[n.escalation_of]}"
    digest_ids = {d for r in rows if (d := getattr(r, "digest_id", None))}
    if not ended and not settled and not digest_ids:
        return {}  # the usual re-check of a warning under way: nothing ended, no row to look at one by one
    live_digests = await _live_digests(session, digest_ids)
    out: dict[int, str] = {}
    for r in rows:
        if r.warning_id in ended and r.kind not in AFTER_END_KINDS:
            out[r.id] = ended[r.warning_id]
        elif getattr(r, "digest_id", None):
            if r.digest_id not in live_digests:
                out[r.id] = "digest_settled"
        elif r.kind in CHASE_KINDS and r.notice_id in settled:
            out[r.id] = settled[r.notice_id]
    return out


async def _live_digests(session: Any, digest_ids: set[int]) -> set[int]:
    """The escalation digests with someone still to tell about: a notice of theirs not yet settled whose
    silent person has not answered either. A digest message lists several people: it goes while one is left."""
    if not digest_ids:
        return set()
    members = (await session.execute(select(Notice.digest_id, Notice.state, Notice.escalation_of).where(
        Notice.digest_id.in_(digest_ids)))).all()
    subjects = {m.escalation_of for m in members if m.escalation_of}
    subject_state = dict((await session.execute(select(Notice.id, Notice.state).where(
        Notice.id.in_(subjects)))).all()) if subjects else {}
    return {m.digest_id for m in members if m.state not in SETTLED_NOTICE_STATES
            and subject_state.get(m.escalation_of) not in SETTLED_NOTICE_STATES}


async def _render(rt: Runtime, rows: Sequence[Any]) -> dict[int, Message]:
    """Messages for every row: the templates, or a plain fallback — a render failure never drops a warning."""
    messages: dict[int, Message] = {}
    try:
        async with rt.db.session() as session:
            # The clock decides whether times print with their date (texts say 18:39 for today).
            messages = dict(await rt.render_outbox(session, rows=rows, settings=rt.settings, now=rt.clock.now()))
    except Exception as exc:  # noqa: BLE001
        log.error("render_failed", count=len(rows), error=f"{type(exc).__name__}: {exc}")
    missing = [r for r in rows if r.id not in messages]
    if missing:
        messages.update(await _fallback_messages(rt, missing))
    base = rt.settings.public_base_url
    for r in rows:
        if r.channel in ("sms", "voice"):
            # The outbox id in the callback URL (covered by the signature) lets a receipt find its row even
            # when it outruns the write of the provider id.
            callback = f"{base}/webhooks/twilio/status?o={r.id}"
            if messages[r.id].status_callback != callback:
                messages[r.id] = dataclasses.replace(messages[r.id], status_callback=callback)
    return messages


async def _fallback_messages(rt: Runtime, rows: Sequence[Any]) -> dict[int, Message]:
    async with rt.db.session() as session:
        titles = dict((await session.execute(select(EarlyWarning.id, EarlyWarning.title).where(
            EarlyWarning.id.in_({r.warning_id for r in rows})))).all())
    out = {}
    for r in rows:
        title = titles.get(r.warning_id, "预警信息")
        prefix = "【解除】" if r.kind == "cancel" else "【预警】"
        out[r.id] = Message(channel=r.channel, address=r.address, body=prefix + title, subject=prefix + title,
                            idempotency_key=r.idempotency_key,
                            metadata={"kind": r.kind, "warning_id": str(r.warning_id), "outbox_id": str(r.id),
                                      "notice_id": str(r.notice_id or "")})
    return out


async def _finish(task: asyncio.Task[Any], *, within: float) -> None:
    """Wait for a task asked to stop; cancel it only if it has not finished `within` seconds."""
    _, pending = await asyncio.wait({task}, timeout=within)
    if pending:
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)


class Dispatcher:
    """One worker's streaming engine (see the module docstring). `run()` until `rt.stopping` is set (or, with
    `drain=True`, until nothing is due and nothing is held); returns how many rows it claimed."""

    def __init__(self, rt: Runtime, *, worker_id: str | None = None) -> None:
        self.rt = rt
        s = rt.settings
        self.id = worker_id or f"{socket.gethostname()[:24]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.concurrency = s.channel_concurrency
        self.queues: dict[str, deque[Item]] = {}
        self.ready: dict[str, asyncio.Condition] = {}
        self.senders: dict[str, list[asyncio.Task[None]]] = {}
        self.held: dict[int, Any] = {}  # claimed rows not yet recorded or handed back
        self.sending: set[int] = set()  # held rows handed to a provider, result not yet committed
        self.in_flight = 0
        self.max_in_flight = 0
        self.claimed = 0
        self.cancelled = 0
        self.recorder = store.Recorder(rt)
        self.pacers: dict[str, StreamPacer] = {}
        self.names = adapter_names(s)
        self.limits = s.rate_limits()
        self._room = asyncio.Event()  # a sender took an item: the feeder may claim more
        self._checked_at = -1e9
        self._check_lock = asyncio.Lock()
        self._ahead: asyncio.Task[None] | None = None  # a re-check started before senders need it
        self._healthy_since: float | None = None  # loop time since the database last answered every beat
        self._beat_ok_at: float | None = None  # loop time when the last successful beat started
        self._beat_ok = asyncio.Event()
        self._closing = False
        self._beat_stop = asyncio.Event()
        self._drain = False
        self._idle = asyncio.Event()

    # --- the engine's tasks -----------------------------------------------------------------------------

    async def run(self, *, drain: bool = False) -> int:
        self._drain = drain
        loop = asyncio.get_running_loop()
        await self._register()
        writer = asyncio.create_task(self.recorder.run(), name="dispatch-recorder")
        beat = asyncio.create_task(self._heartbeat(), name="dispatch-heartbeat")
        feeder = asyncio.create_task(self._feed(), name="dispatch-feeder")
        progress = asyncio.create_task(self._progress(), name="dispatch-progress")
        try:
            stop = asyncio.create_task(self.rt.stopping.wait())
            await asyncio.wait({feeder, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if feeder.done():
                feeder.result()  # a crashed feeder is a bug: surface it
        finally:
            # Stopping (or cancelled): claim nothing more, hand back what is not yet sent, let the sends under way
            # finish within the grace, record everything — none of it may be cut off by the cancellation.
            await asyncio.shield(self._close(feeder, writer, beat, progress,
                                             grace=0.0 if not self.rt.stopping.is_set() and not drain
                                             else self.rt.settings.dispatch_stop_grace_seconds,
                                             loop=loop))
        return self.claimed

    async def _close(self, feeder: asyncio.Task[None], writer: asyncio.Task[None], beat: asyncio.Task[None],
                     progress: asyncio.Task[None], *, grace: float, loop: asyncio.AbstractEventLoop) -> None:
        # Tasks that write are asked to stop and awaited, never cancelled while they can be mid-statement: a
        # statement cancelled on SQLite can leave its connection holding the write lock (everyone else then
        # waits out busy_timeout). Cancelling is the last resort for a task that does not finish in time.
        self._closing = True
        self._room.set()
        await _finish(feeder, within=max(grace, 5.0))
        if self._ahead is not None:  # it may be writing cancellations: let it finish
            await _finish(self._ahead, within=5.0)
        unsent = [it for q in self.queues.values() for it in q]
        for q in self.queues.values():
            q.clear()
        for cond in self.ready.values():
            async with cond:
                cond.notify_all()
        senders = [t for ts in self.senders.values() for t in ts]
        if senders:
            _, pending = await asyncio.wait(senders, timeout=grace) if grace > 0 else (set(), set(senders))
            for t in pending:
                t.cancel()  # its row stays 'sending', claimed by us; others reclaim it once we are gone
            await asyncio.gather(*senders, return_exceptions=True)
        for it in unsent:
            self.recorder.add(Outcome(it, None))
            self.held.pop(it.row.id, None)
        recorded = await self.recorder.drain(deadline=loop.time() + max(grace, 5.0))
        self.recorder.stop()
        self._beat_stop.set()
        await _finish(writer, within=5.0)
        await _finish(beat, within=5.0)
        progress.cancel()  # it only logs
        await asyncio.gather(progress, return_exceptions=True)
        self._log_progress(final=True)
        try:
            async with self.rt.db.session() as session:
                await store.unregister_worker(session, worker=self.id)
        except Exception as exc:  # noqa: BLE001 — our heartbeat stops anyway; others see us gone soon
            log.warning("dispatch_unregister_failed", worker=self.id, error=f"{type(exc).__name__}: {exc}")
        if not recorded or self.held:
            log.warning("dispatch_left_rows", worker=self.id, held=len(self.held),
                        unrecorded=len(self.recorder.pending))

    async def _register(self) -> None:
        retried = False
        while True:
            try:
                async with self.rt.db.session() as session:
                    await store.register_worker(session, worker=self.id, host=socket.gethostname(),
                                                pid=os.getpid(), now=self.rt.clock.now())
                    uptime = await server_uptime(session)
                break
            except Exception as exc:  # noqa: BLE001 — the database is down at start: wait for it
                if self.rt.stopping.is_set():
                    raise
                retried = True
                log.warning("dispatch_register_retry", error=f"{type(exc).__name__}: {exc}"[:300])
                await asyncio.sleep(1.0)
        # Others' heartbeats are as old as they look only if the database could take them. A worker starting
        # while (or just after) the database was away would judge live workers gone and send again what they
        # sent meanwhile: it counts its health from when the database came back, as a running worker does.
        gone = self.rt.settings.dispatch_worker_gone_seconds
        up_for = 0.0 if retried else gone if uptime is None else min(gone, uptime)
        now = asyncio.get_running_loop().time()
        self._healthy_since = now - up_for
        self._beat_ok_at = now

    async def _heartbeat(self) -> None:
        """Every beat: say we are alive, renew our leases, and put back rows of workers known gone."""
        s = self.rt.settings
        loop = asyncio.get_running_loop()
        while True:
            try:
                await asyncio.wait_for(self._beat_stop.wait(), s.dispatch_heartbeat_seconds)
                return
            except TimeoutError:
                pass
            started = loop.time()
            try:
                await self._beat()
                if not self._beat_fresh():
                    # A stretch without beats (the database away, or our loop starved): the others may not have
                    # been able to beat either, so they get a whole gone interval before we judge them.
                    self._healthy_since = None
                    await self._leave_what_others_took()
                self._beat_ok_at = started
                self._beat_ok.set()
                if self._healthy_since is None:
                    self._healthy_since = loop.time()
            except Exception as exc:  # noqa: BLE001 — the database is away; the recorder keeps our results
                self._healthy_since = None
                log.warning("dispatch_heartbeat_failed", worker=self.id, held=len(self.held),
                            error=f"{type(exc).__name__}: {exc}"[:300])

    def _beat_fresh(self) -> bool:
        limit = FENCE_SHARE * self.rt.settings.dispatch_worker_gone_seconds
        return self._beat_ok_at is not None and asyncio.get_running_loop().time() - self._beat_ok_at <= limit

    async def _fenced(self) -> None:
        """Wait, sending nothing, until a beat succeeds (see the module docstring)."""
        if not self._beat_fresh():
            log.warning("dispatch_fenced", worker=self.id, held=len(self.held))
        while not self._beat_fresh() and not self._closing:
            self._beat_ok.clear()
            try:
                await asyncio.wait_for(self._beat_ok.wait(), self.rt.settings.dispatch_heartbeat_seconds)
            except TimeoutError:
                pass

    async def _leave_what_others_took(self) -> None:
        """After a stretch without beats: drop the rows reclaimed from us meanwhile (their new holder sends them)."""
        async with self.rt.db.session() as session:
            lost = set(await store.taken_from(session, worker=self.id, ids=list(self.held)))
        lost -= self.sending  # already with a provider: its result is recorded as usual
        if not lost:
            return
        for i in lost:
            self.held.pop(i, None)
        for q in self.queues.values():
            keep = [it for it in q if it.row.id not in lost]
            q.clear()
            q.extend(keep)
        self._room.set()
        log.warning("dispatch_rows_taken_while_fenced", worker=self.id, count=len(lost), outbox_ids=sorted(lost)[:50])

    async def _beat(self) -> None:
        s = self.rt.settings
        now = self.rt.clock.now()
        async with self.rt.db.session() as session:
            await store.heartbeat(session, worker=self.id, now=now,
                                  lease_until=now + timedelta(seconds=s.dispatch_lease_seconds),
                                  renew_before=now + timedelta(seconds=s.dispatch_lease_seconds / 2))
        await self._reclaim(now)

    async def _reclaim(self, now: datetime) -> None:
        s = self.rt.settings
        loop = asyncio.get_running_loop()
        # After an outage every heartbeat is old, and a lease may have run out while its live holder could not renew
        # it: put back nothing, by either rule, until the others have had time to beat again (the first beat after
        # a gap is not fresh yet, and resets the count when it ends).
        judge = (self._healthy_since is not None and self._beat_fresh()
                 and loop.time() - self._healthy_since >= s.dispatch_worker_gone_seconds)
        if not judge:
            return
        async with self.rt.db.session() as session:
            reclaimed = await store.reclaim_expired(
                session, now=now, max_attempts=s.retry_max_attempts, adapters=self.names, me=self.id,
                gone_before=now - timedelta(seconds=s.dispatch_worker_gone_seconds))
        if reclaimed:
            log.warning("dispatch_reclaimed", count=len(reclaimed), outbox_ids=reclaimed[:50])
            self._room.set()

    async def _feed(self) -> None:
        """Keep every channel's queue about one pool deep: claim what the free slots can take, render, queue."""
        s = self.rt.settings
        await self._reclaim(self.rt.clock.now())
        while not self._closing:
            waiting = sum(len(q) for q in self.queues.values())
            room = min(s.dispatch_batch_size, 2 * self.concurrency - waiting)
            rows: list[Any] = []
            if room >= max(1, self.concurrency // 4) or (waiting == 0 and room > 0):
                try:
                    rows = await self._claim(room)
                except Exception as exc:  # noqa: BLE001 — the database is away: try again shortly
                    log.warning("dispatch_claim_failed", error=f"{type(exc).__name__}: {exc}"[:300])
                    await asyncio.sleep(s.dispatch_interval_seconds)
                    continue
            if rows:
                continue
            if self._drain and not self.held and waiting == 0:
                # Nothing due and nothing held; a reclaim may still free rows of a dead worker.
                await self._reclaim(self.rt.clock.now())
                if not await self._claim_probe():
                    return
                continue
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), s.dispatch_interval_seconds)
            except TimeoutError:
                pass

    async def _claim_probe(self) -> bool:
        """Whether anything is due now (drain mode ends when not)."""
        async with self.rt.db.session() as session:
            due = (await session.execute(select(store.OUTBOX.c.id).where(
                store.OUTBOX.c.status == store.QUEUED,
                store.OUTBOX.c.next_attempt_at <= self.rt.clock.now()).limit(1))).first()
        return due is not None

    async def _claim(self, room: int) -> list[Any]:
        s = self.rt.settings
        now = self.rt.clock.now()
        async with self.rt.db.session() as session:
            rows = await store.claim(session, now=now, lease_until=now + timedelta(seconds=s.dispatch_lease_seconds),
                                     batch_size=room, worker=self.id)
            stale = await _stale(session, rows, now=now)
            if stale:
                await store.cancel(session, rows=[r for r in rows if r.id in stale], reasons=stale, now=now)
        if not rows:
            return rows
        self.claimed += len(rows)
        self.cancelled += len(stale)
        live = [r for r in rows if r.id not in stale]
        for r in live:
            self.held[r.id] = r
        messages = await _render(self.rt, live) if live else {}
        for r in live:
            channel = r.channel
            q = self.queues.get(channel)
            adapter = self.rt.channels.get(channel)
            if q is None:
                q = self.queues[channel] = deque()
                self.ready[channel] = asyncio.Condition()
                self.senders[channel] = self._start_senders(channel, min(max_batch(adapter), self.concurrency))
            name = getattr(adapter, "name", None) or self.names.get(channel, "console")
            q.append(Item(r, messages[r.id], adapter, name, bucket_for(channel, name, self.limits)))
        for channel in {r.channel for r in live}:
            cond = self.ready[channel]
            async with cond:
                cond.notify(len(self.queues[channel]))
        return rows

    def _start_senders(self, channel: str, batch: int) -> list[asyncio.Task[None]]:
        """`CHANNEL_CONCURRENCY` messages in flight per channel: one sender per message, or, for an adapter
        that takes batches (Aliyun SendBatchSms), one per batch: a hundred messages cost one pass through the
        engine instead of a hundred, and the bound on what a crash can double is the same."""
        if batch > 1:
            return [asyncio.create_task(self._batch_sender(channel, batch), name=f"dispatch-send-{channel}")
                    for _ in range(max(1, self.concurrency // batch))]
        return [asyncio.create_task(self._sender(channel), name=f"dispatch-send-{channel}")
                for _ in range(self.concurrency)]

    async def _next(self, channel: str) -> Item | None:
        items = await self._next_many(channel, 1)
        return items[0] if items else None

    async def _next_many(self, channel: str, n: int) -> list[Item]:
        """Up to `n` queued items, as soon as there is one (a batch never waits to fill: latency first)."""
        q, cond = self.queues[channel], self.ready[channel]
        async with cond:
            while not q:
                if self._closing:
                    return []
                await cond.wait()
            items = [q.popleft() for _ in range(min(n, len(q)))]
        if len(q) < self.concurrency:
            self._room.set()
        return items

    async def _sender(self, channel: str) -> None:
        clock = self.rt.clock
        while not self._closing:
            item = await self._next(channel)
            if item is None:
                return
            try:
                if not await self._still_due(item):
                    continue
                if item.bucket is not None:
                    await self._pacer(item).take()
                await self._fenced()
                if self._closing:  # stopped while waiting: hand it back unsent
                    self.recorder.add(Outcome(item, None))
                    self.held.pop(item.row.id, None)
                    continue
                if self.held.get(item.row.id) is not item.row:  # taken by another worker while we were fenced
                    continue
            except asyncio.CancelledError:
                self.recorder.add(Outcome(item, None))
                self.held.pop(item.row.id, None)
                raise
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.sending.add(item.row.id)
            try:
                outcome = await send_one(item, clock)
            finally:
                self.in_flight -= 1
            if debug_enabled():
                log.debug("message_sent", outbox_id=item.row.id, channel=channel,
                          status=outcome.result.status if outcome.result else None)
            # The slot stays taken until the result is committed: that bounds what a crash can double.
            await self.recorder.commit(outcome)
            # Only this claim's entry: a late heartbeat can have had the row reclaimed and claimed again by us
            # while this send was under way; popping by id alone stranded the new claim in 'sending'.
            if self.held.get(item.row.id) is item.row:
                self.held.pop(item.row.id, None)
                self.sending.discard(item.row.id)
            if self._drain:
                self._room.set()

    async def _batch_sender(self, channel: str, size: int) -> None:
        """`_sender` for batches: the same checks, pacing and group commit, once per batch."""
        clock = self.rt.clock
        while not self._closing:
            items = await self._next_many(channel, size)
            if not items:
                return
            try:
                items = await self._still_due_many(items)
                if not items:
                    continue
                if items[0].bucket is not None:  # one channel, one bucket
                    await self._pacer(items[0]).take(len(items))
                await self._fenced()
                if self._closing:  # stopped while waiting: hand them back unsent
                    self._hand_back(items)
                    continue
                items = [it for it in items if self.held.get(it.row.id) is it.row]  # others took some, fenced
                if not items:
                    continue
            except asyncio.CancelledError:
                self._hand_back(items)
                raise
            self.in_flight += len(items)
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.sending.update(it.row.id for it in items)
            try:
                outcomes = await send_batch(items, clock)
            finally:
                self.in_flight -= len(items)
            # The slots stay taken until the results are committed: that bounds what a crash can double.
            await self.recorder.commit_many(outcomes)
            for it in items:
                if self.held.get(it.row.id) is it.row:
                    self.held.pop(it.row.id, None)
                    self.sending.discard(it.row.id)
            if self._drain:
                self._room.set()

    def _hand_back(self, items: list[Item]) -> None:
        for it in items:
            self.recorder.add(Outcome(it, None))
            self.held.pop(it.row.id, None)

    def _pacer(self, item: Item) -> StreamPacer:
        key, rate = item.bucket  # type: ignore[misc]
        pacer = self.pacers.get(key)
        if pacer is None:
            pacer = self.pacers[key] = StreamPacer(self.rt.ratelimiter, key, rate, burst_for(rate),
                                                   backlog=lambda: sum(len(q) for q in self.queues.values()) + 1)
        return pacer

    async def _still_due(self, item: Item) -> bool:
        return bool(await self._still_due_many([item]))

    async def _still_due_many(self, items: list[Item]) -> list[Item]:
        """Re-read the state of every held row if the last look is older than RECHECK_SECONDS; the items that
        may still go (the others were cancelled by the re-check)."""
        loop = asyncio.get_running_loop()
        age = loop.time() - self._checked_at
        if RECHECK_SECONDS / 2 < age <= RECHECK_SECONDS and self._ahead is None and not self._check_lock.locked():
            # Look again before the last look is too old, so senders seldom wait for it: with thousands of
            # rows held and a loaded database a re-check takes a while, and every sender waited through it.
            self._ahead = asyncio.create_task(self._recheck_ahead(), name="dispatch-recheck")
        while loop.time() - self._checked_at > RECHECK_SECONDS:
            async with self._check_lock:
                if loop.time() - self._checked_at <= RECHECK_SECONDS:
                    break
                started = loop.time()
                try:
                    await self._recheck()
                    self._checked_at = started
                except Exception as exc:  # noqa: BLE001 — without a fresh look nothing goes; try again
                    log.warning("dispatch_recheck_failed", error=f"{type(exc).__name__}: {exc}"[:300])
                    await asyncio.sleep(0.5)
                    if self._closing:
                        self._hand_back(items)
                        return []
        return [it for it in items if self.held.get(it.row.id) is it.row]

    async def _recheck_ahead(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with self._check_lock:
                if loop.time() - self._checked_at <= RECHECK_SECONDS / 2:
                    return
                started = loop.time()
                await self._recheck()
                self._checked_at = started
        except Exception as exc:  # noqa: BLE001 — the senders' own re-check tries again when they need it
            log.warning("dispatch_recheck_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        finally:
            self._ahead = None

    async def _recheck(self) -> None:
        # Every held row not yet handed to a provider: queued here, or taken by a sender that has not sent it.
        rows = [r for i, r in self.held.items() if i not in self.sending]
        if not rows:
            return
        now = self.rt.clock.now()
        async with self.rt.db.session() as session:
            stale = await _stale(session, rows, now=now)
            if stale:
                await store.cancel(session, rows=[r for r in rows if r.id in stale], reasons=stale, now=now)
        if not stale:
            return
        self.cancelled += len(stale)
        for q in self.queues.values():
            keep = [it for it in q if it.row.id not in stale]
            q.clear()
            q.extend(keep)
        for i in stale:
            self.held.pop(i, None)
        self._room.set()
        log.info("dispatch_cancelled_before_send", count=len(stale), reasons=sorted(set(stale.values())))

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_SECONDS)
            self._log_progress()

    _last: dict[str, int] | None = None
    _last_at: float = 0.0

    def _log_progress(self, *, final: bool = False) -> None:
        """One INFO line per interval: what this worker sent, retried, failed and holds (never one per message)."""
        t = dict(self.recorder.totals)
        now = time.monotonic()
        last, self._last = self._last or {}, t
        since, self._last_at = now - (self._last_at or now), now
        delta = {k: v - last.get(k, 0) for k, v in t.items() if v - last.get(k, 0)}
        if not delta and not final:
            return
        self.rt.counters.add(delta)
        handled = sum(delta.get(k, 0) for k in ("sent", "delivered", "retrying", "failed"))
        log.info("dispatch_progress", worker=self.id, final=final or None, claimed=self.claimed,
                 cancelled=self.cancelled, held=len(self.held), in_flight=self.in_flight,
                 max_in_flight=self.max_in_flight,
                 queued_here=sum(len(q) for q in self.queues.values()),
                 per_second=round(handled / since, 1) if since > 0 else None, **delta)
