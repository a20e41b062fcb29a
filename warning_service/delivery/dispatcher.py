"""The outbox dispatcher: claim due messages, drop those that must no longer go, render, send paced, record.

Every step is set-based (one claim UPDATE per batch, bulk inserts and updates for the results), and the
database is the only memory: a row is 'sending' under a lease while a worker holds it, and a crashed
worker's rows are reclaimed when the lease runs out. That reclaim is the only way a message can go twice,
and it goes with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from channels.base import Message
from warning_service.delivery import store
from warning_service.delivery.adapters import adapter_names
from warning_service.delivery.models import AFTER_END_KINDS
from warning_service.delivery.ratelimit import bucket_for, burst_for
from warning_service.delivery.sending import Item, Outcome, send_all
from warning_service.early_warning.models import EarlyWarning
from warning_service.logging import get_logger
from warning_service.notice.models import CHASE_KINDS, Notice
from warning_service.runtime import Runtime

log = get_logger(__name__)

# Kinds that only make sense while someone is still silent: drop them once the notice is answered or closed.
SETTLED_NOTICE_STATES = ("acknowledged", "closed")
# How long one dispatch_tick keeps draining before handing back to the scheduler.
TICK_BUDGET_SECONDS = 30.0


@dataclass
class Batch:
    """Claimed, checked and rendered messages, ready to send before `deadline` (event-loop time)."""

    claimed: int
    cancelled: int
    items: list[Item]
    deadline: float


async def dispatch_tick(rt: Runtime) -> int:
    """Worker job: drain due messages batch after batch; returns how many were handled.

    On PostgreSQL the next batch is claimed and rendered while the current one is sent and recorded, so
    the database's round trips overlap the CPU work instead of adding to it.
    """
    total, started = 0, time.monotonic()
    size = rt.settings.dispatch_batch_size
    if rt.db.is_sqlite:  # one writer: overlapping transactions would only queue behind each other
        while True:
            n = await dispatch_once(rt, batch_size=size)
            total += n
            if n < size or time.monotonic() - started > TICK_BUDGET_SECONDS:
                return total
    upcoming: asyncio.Task[Batch] | None = asyncio.create_task(prepare(rt, batch_size=size))
    try:
        while upcoming is not None:
            batch = await upcoming
            total += batch.claimed
            more = batch.claimed >= size and time.monotonic() - started <= TICK_BUDGET_SECONDS
            upcoming = asyncio.create_task(prepare(rt, batch_size=size)) if more else None
            await deliver(rt, batch)
        return total
    except BaseException:
        if upcoming is not None:
            await asyncio.shield(_abandon(rt, upcoming))
        raise


async def _abandon(rt: Runtime, upcoming: asyncio.Task[Batch]) -> None:
    """Stopping: hand a claimed-but-unsent batch back to the queue now rather than after its lease."""
    if not upcoming.done():
        upcoming.cancel()
    try:
        batch = await upcoming
    except BaseException:  # noqa: BLE001 — cancelled before it claimed, or failed: nothing to hand back
        return
    recorder = store.Recorder(rt)
    for item in batch.items:
        recorder.add(Outcome(item, None))
    await recorder.flush()


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
            Notice.id.in_(watched)))).all()
        subjects = {n.escalation_of for n in notices if n.escalation_of}
        subject_state = dict((await session.execute(select(Notice.id, Notice.state).where(
            Notice.id.in_(subjects)))).all()) if subjects else {}
        for n in notices:
            if n.state in SETTLED_NOTICE_STATES:
                settled[n.id] = f"notice_{n.state}"
            elif subject_state.get(n.escalation_of) in SETTLED_NOTICE_STATES:
                settled[n.id] = f"silent_notice_{subject_state[n.escalation_of]}"
    live_digests = await _live_digests(session, {d for r in rows if (d := getattr(r, "digest_id", None))})
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
