"""The dispatcher's SQL: claim, reclaim, cancel, and record results — each a set-based statement."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import case, delete, insert, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import sms_segments
from warning_service.db import Database
from warning_service.delivery import bulk
from warning_service.delivery.models import DeliveryAttempt, DispatchWorker, OutboxMessage
from warning_service.delivery.sending import Outcome
from warning_service.dialect import chunks, in_ids, skip_locked
from warning_service.ledger import service as ledger
from warning_service.logging import get_logger
from warning_service.notice import service as notices

log = get_logger(__name__)
ACTOR = "system:dispatcher"
OUTBOX = OutboxMessage.__table__
ATTEMPT = DeliveryAttempt.__table__
WORKER = DispatchWorker.__table__
# Status literals are inlined, not bound, so the partial queue index (WHERE status = 'queued') matches.
QUEUED, SENDING = literal_column("'queued'"), literal_column("'sending'")


class Claimed(NamedTuple):
    """A claimed outbox row. Read a few dozen times on its way (render, re-checks, send, record): a SQLAlchemy
    Row finds a column by name after a failed attribute lookup, ~20 times slower than a tuple's field."""

    id: int
    warning_id: int
    notice_id: int | None
    revision: int
    kind: str
    channel: str
    address: str
    region_code: str | None
    priority: int
    attempts: int
    idempotency_key: str
    digest_id: int | None


CLAIMED_COLUMNS = tuple(OUTBOX.c[name] for name in Claimed._fields)


async def claim(session: AsyncSession, *, now: datetime, lease_until: datetime, batch_size: int,
                worker: str | None = None) -> list[Any]:
    """Take up to `batch_size` due rows, highest priority first, under a lease (held by `worker`, whose
    heartbeat renews it); other workers skip them."""
    due = (select(OUTBOX.c.id).where(OUTBOX.c.status == QUEUED, OUTBOX.c.next_attempt_at <= now)
           .order_by(OUTBOX.c.priority.desc(), OUTBOX.c.id).limit(batch_size)
           .with_for_update(skip_locked=True))  # rendered on PostgreSQL only; SQLite has one writer
    stmt = (update(OUTBOX).where(OUTBOX.c.id.in_(due.scalar_subquery()))
            .values(status=SENDING, lease_until=lease_until, attempts=OUTBOX.c.attempts + 1, updated_at=now,
                    claimed_by=worker)
            .returning(*CLAIMED_COLUMNS))
    rows = [Claimed._make(r) for r in (await session.execute(stmt)).all()]
    rows.sort(key=lambda r: (-r.priority, r.id))
    return rows


async def reclaim_expired(session: AsyncSession, *, now: datetime, max_attempts: int,
                          adapters: dict[str, str], me: str | None = None,
                          gone_before: datetime | None = None) -> list[int]:
    """Rows whose worker died mid-send go back to the queue (or fail, if out of attempts); returns their ids.

    A row is abandoned when its lease ran out, or (with `gone_before`) when the worker holding it has not
    beaten since then. `me` never reclaims its own rows: it still holds them and will record them.
    The interrupted try is recorded as an attempt: it may or may not have reached the provider.
    """
    abandoned = OUTBOX.c.lease_until < now
    if gone_before is not None:
        alive = select(WORKER.c.id).where(WORKER.c.heartbeat_at >= gone_before)
        abandoned = or_(abandoned, OUTBOX.c.claimed_by.not_in(alive.scalar_subquery()))
    where = [OUTBOX.c.status == SENDING, abandoned]
    if me is not None:
        where.append(or_(OUTBOX.c.claimed_by.is_(None), OUTBOX.c.claimed_by != me))
    stmt = (update(OUTBOX).where(*where)
            .values(status=case((OUTBOX.c.attempts >= max_attempts, literal_column("'failed'")),
                                else_=QUEUED),
                    next_attempt_at=now, lease_until=None, claimed_by=None, error_code="lease_expired",
                    error_message="the worker stopped before recording the result", updated_at=now)
            .returning(OUTBOX.c.id, OUTBOX.c.warning_id, OUTBOX.c.notice_id, OUTBOX.c.channel,
                       OUTBOX.c.address, OUTBOX.c.status))
    rows = (await session.execute(stmt)).all()
    if not rows:
        return []
    await session.execute(insert(ATTEMPT), [
        {"outbox_id": r.id, "notice_id": r.notice_id, "channel": r.channel,
         "adapter": adapters.get(r.channel, "?")[:16], "address": r.address, "status": "interrupted",
         "provider_id": None, "error_code": "lease_expired", "error_message": None, "retryable": True,
         "started_at": now, "finished_at": now} for r in rows])
    failed = [r for r in rows if r.status == "failed"]
    if failed:
        await ledger.append_many(session, _ledger_rows(failed, now=now, action="messages.failed",
                                                       extra=lambda rs: {"reason": "lease_expired"}))
    return [r.id for r in rows]


async def cancel(session: AsyncSession, *, rows: Sequence[Any], reasons: dict[int, str], now: datetime
                 ) -> None:
    """Mark claimed rows that must no longer go as cancelled, with the reason and a ledger entry."""
    by_reason: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        by_reason[reasons[r.id]].append(r.id)
    for reason, ids in by_reason.items():
        for part in chunks(ids, 1000):
            await session.execute(
                update(OUTBOX).where(OUTBOX.c.id.in_(part), OUTBOX.c.status == SENDING)
                .values(status="cancelled", attempts=OUTBOX.c.attempts - 1, lease_until=None, claimed_by=None,
                        error_code=reason, updated_at=now))
    await ledger.append_many(session, _ledger_rows(
        rows, now=now, action="messages.cancelled",
        extra=lambda rs: {"reasons": dict(Counter(reasons[r.id] for r in rs))}))


async def register_worker(session: AsyncSession, *, worker: str, host: str, pid: int, now: datetime) -> None:
    await session.execute(delete(WORKER).where(WORKER.c.id == worker))
    await session.execute(insert(WORKER).values(id=worker, host=host[:64], pid=pid, started_at=now,
                                                heartbeat_at=now))


async def heartbeat(session: AsyncSession, *, worker: str, now: datetime, lease_until: datetime,
                    renew_before: datetime) -> int:
    """Say this worker is alive and renew the leases of its rows that end before `renew_before`; returns how
    many were renewed. One range scan of the partial lease index, not a list of every held id: renewing
    only leases past half their time touches each row about once per half lease instead of every beat,
    which also keeps the beat from locking rows the group commit is writing (they deadlocked)."""
    beat = await session.execute(update(WORKER).where(WORKER.c.id == worker).values(heartbeat_at=now))
    if beat.rowcount == 0:  # removed by an operator or a test: come back
        await session.execute(insert(WORKER).values(id=worker, host="?", pid=0, started_at=now, heartbeat_at=now))
    # Rows locked right now are being written by the recorder (their result) or reclaimed: skip them rather than
    # wait (waiting in another row order than the recorder's deadlocked); a row still held is renewed next beat.
    mine = skip_locked(session, select(OUTBOX.c.id).where(
        OUTBOX.c.status == SENDING, OUTBOX.c.lease_until < renew_before, OUTBOX.c.claimed_by == worker)
        .order_by(OUTBOX.c.id))
    return (await session.execute(
        update(OUTBOX).where(OUTBOX.c.id.in_(mine.scalar_subquery())).values(lease_until=lease_until))).rowcount


async def unregister_worker(session: AsyncSession, *, worker: str) -> None:
    """A worker leaving: whatever it still holds (sends it gave up waiting for) is reclaimed by the others."""
    await session.execute(delete(WORKER).where(WORKER.c.id == worker))


async def taken_from(session: AsyncSession, *, worker: str, ids: Sequence[int]) -> list[int]:
    """Which of `ids` `worker` no longer holds (reclaimed while it was judged gone, perhaps claimed again by
    another worker): it must not send them."""
    if not ids:
        return []
    held = or_(OUTBOX.c.status != SENDING, OUTBOX.c.claimed_by.is_(None), OUTBOX.c.claimed_by != worker)
    rows = await session.execute(select(OUTBOX.c.id).where(in_ids(session, OUTBOX.c.id, ids), held))
    return [r.id for r in rows]


async def hand_back(session: AsyncSession, *, rows: Sequence[Any], now: datetime) -> None:
    """Claimed rows this worker will not send after all go back to the queue untouched (attempt not counted)."""
    if rows:
        await session.execute(bulk.DEFERRED, [{"b_id": r.id, "b_attempts": r.attempts, "b_at": now} for r in rows])


def backoff_seconds(attempts: int, *, base: float, cap: float) -> float:
    """Capped exponential backoff with jitter: half fixed, half random, so a burst of failures spreads out."""
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    return delay / 2 + random.random() * delay / 2


def results(outcomes: Sequence[Outcome], *, now: datetime, settings: Any) -> bulk.Results:
    """The rows and statement parameters a batch of outcomes becomes; logs the give-ups."""
    out = bulk.Results({"sent": 0, "delivered": 0, "retrying": 0, "failed": 0, "deferred": 0, "segments": 0})
    totals, attempts, success, failure, deferred = out.totals, out.attempts, out.success, out.failure, out.deferred
    sent_rows: list[Any] = []
    failed_rows: list[tuple[Any, str]] = []
    for o in outcomes:
        row, r = o.item.row, o.result
        if r is None:
            deferred.append({"b_id": row.id, "b_attempts": row.attempts, "b_at": now})
            totals["deferred"] += 1
            continue
        attempts.append({
            "outbox_id": row.id, "notice_id": row.notice_id, "channel": row.channel,
            "adapter": o.item.adapter_name[:16], "address": row.address, "status": r.status,
            "provider_id": (r.provider_id or None) and r.provider_id[:64],
            "error_code": (r.error_code or None) and r.error_code[:64], "error_message": r.error_message,
            "retryable": r.retryable, "started_at": o.started_at, "finished_at": o.finished_at})
        if r.status in ("sent", "delivered"):
            segments = r.segments or (_segments(o.item.message) if row.channel == "sms" else None)
            totals["segments"] += segments or 0
            totals[r.status] += 1
            success.append({"b_id": row.id, "b_attempts": row.attempts, "b_status": r.status,
                            "b_provider": attempts[-1]["provider_id"], "b_segments": segments,
                            "b_at": o.finished_at or now,
                            "b_delivered_at": (o.finished_at or now) if r.status == "delivered" else None})
            sent_rows.append(row)
            if r.status == "delivered" and row.notice_id:
                out.delivered_notices.append(row.notice_id)
            continue
        final = not r.retryable or row.attempts >= settings.retry_max_attempts
        delay = 0.0 if final else backoff_seconds(row.attempts, base=settings.retry_base_seconds,
                                                   cap=settings.retry_max_seconds)
        failure.append({"b_id": row.id, "b_attempts": row.attempts,
                        "b_status": "failed" if final else "queued",
                        "b_next": now + timedelta(seconds=delay), "b_code": attempts[-1]["error_code"],
                        "b_message": (r.error_message or "")[:1000] or None, "b_at": now})
        totals["failed" if final else "retrying"] += 1
        if final:
            failed_rows.append((row, r.error_code or "failed"))
        # A give-up is rare and needs a look; a retry is routine (counted in the progress line), so DEBUG.
        (log.warning if final else log.debug)("message_failed" if final else "message_retry", outbox_id=row.id,
                    warning_id=row.warning_id, notice_id=row.notice_id, channel=row.channel,
                    attempt=row.attempts, error_code=r.error_code, error=r.error_message,
                    retry_in=round(delay, 1) if not final else None)
    delivered_ids = {p["b_id"] for p in success if p["b_status"] == "delivered"}
    out.ledger = _ledger_rows(sent_rows, now=now, action="messages.sent",
                              extra=lambda rs: {"delivered": sum(1 for r in rs if r.id in delivered_ids)})
    codes = {row.id: code for row, code in failed_rows}
    out.ledger += _ledger_rows([row for row, _ in failed_rows], now=now, action="messages.failed",
                               extra=lambda rs: {"errors": {str(r.id): codes[r.id] for r in rs}})
    return out


async def record(session: AsyncSession, outcomes: Sequence[Outcome], *, now: datetime, settings: Any
                 ) -> dict[str, int]:
    """Write attempts, move outbox rows forward, mark notices delivered, and add one ledger entry per
    warning and outcome — a handful of statements however many outcomes."""
    r = results(outcomes, now=now, settings=settings)
    await bulk.insert_attempts(session, r.attempts)
    await bulk.mark_sent(session, r.success)
    for stmt, params in ((bulk.FAILURE, r.failure), (bulk.DEFERRED, r.deferred)):
        if params:
            await session.execute(stmt, params)
    await notices.mark_delivered(session, r.delivered_notices, now=now)
    if r.ledger:
        await ledger.append_many(session, r.ledger)
    return r.totals


async def write(db: Database, outcomes: Sequence[Outcome], *, now: datetime, settings: Any) -> dict[str, int]:
    """`record` in a transaction of its own: on PostgreSQL one autocommit statement on the raw pool
    (bulk.record_alone), elsewhere a session."""
    if db.is_sqlite:
        async with db.session() as session:
            return await record(session, outcomes, now=now, settings=settings)
    r = results(outcomes, now=now, settings=settings)
    await bulk.record_alone(db, r, now=now)
    return r.totals


def _segments(message: Any) -> int:
    known = message.metadata.get("segments")
    return int(known) if known and known.isdigit() else sms_segments(message.body)


def _ledger_rows(rows: Sequence[Any], *, now: datetime, action: str, extra: Any = None
                 ) -> list[dict[str, Any]]:
    """One ledger entry per warning: counts by channel and the outbox ids (not one entry per message)."""
    by_warning: dict[int, list[Any]] = defaultdict(list)
    for r in rows:
        by_warning[r.warning_id].append(r)
    out = []
    for warning_id, rs in sorted(by_warning.items()):
        by_channel: dict[str, int] = defaultdict(int)
        for r in rs:
            by_channel[r.channel] += 1
        details: dict[str, Any] = {"count": len(rs), "by_channel": dict(by_channel),
                                   "outbox_ids": sorted(r.id for r in rs)}
        if extra is not None:
            details.update(extra(rs))
        out.append({"at": now, "actor": ACTOR, "action": action, "subject_type": "warning",
                    "subject_id": warning_id, "details": details})
    return out


class Recorder:
    """Collects outcomes and writes them in bulk: `flush()` on demand, or as a group commit (`commit()` waits
    until its outcome is in the database, `run()` writes whatever has gathered as soon as the last write is
    done), so an accepted send is recorded within a few milliseconds and a crash loses at most the
    outcomes being written."""

    def __init__(self, rt: Any) -> None:
        self.rt = rt
        self.pending: list[Outcome] = []
        self._waiters: list[asyncio.Future[None]] = []
        self.totals: dict[str, int] = defaultdict(int)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopped = False
        self.failures = 0  # writes that failed and were retried (for the progress line)

    def add(self, outcome: Outcome) -> None:
        self.pending.append(outcome)

    async def commit(self, outcome: Outcome) -> None:
        """Queue `outcome` for the next group write and wait until it is committed."""
        await self.commit_many([outcome])

    async def commit_many(self, outcomes: Sequence[Outcome]) -> None:
        """`commit` for a batch's outcomes: one wait for all of them."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.extend(outcomes)
        self._waiters.append(done)
        self._wake.set()
        # A sender cancelled while waiting leaves its outcome queued: the writer still records it.
        await asyncio.shield(done)

    async def flush(self) -> None:
        async with self._lock:
            if not self.pending:
                return
            batch, self.pending = self.pending, []
            waiters, self._waiters = self._waiters, []
            try:
                totals = await self._write(batch)
            except BaseException:
                # nothing was committed: keep them for the next flush
                self.pending, self._waiters = batch + self.pending, waiters + self._waiters
                raise
            for k, v in totals.items():
                self.totals[k] += v
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    def stop(self) -> None:
        """Ask `run` to return once its write in progress (if any) is done."""
        self._stopped = True
        self._wake.set()

    async def run(self, *, gather_seconds: float = 0.005, max_backoff: float = 2.0) -> None:
        """Group commit until stopped: write what has gathered, retrying a failed write (the database may be
        restarting) for as long as the process runs — an outcome is never dropped while it is held."""
        backoff = 0.1
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._stopped:
                return
            if gather_seconds:
                await asyncio.sleep(gather_seconds)  # let the sends finishing in the same instant join
            try:
                await self.flush()
                backoff = 0.1
            except Exception as exc:  # noqa: BLE001
                self.failures += 1
                log.warning("dispatch_record_retry", pending=len(self.pending), retry_in=backoff,
                            error=f"{type(exc).__name__}: {exc}"[:300])
                await asyncio.sleep(backoff)
                backoff = min(max_backoff, backoff * 2)
            if self.pending:
                self._wake.set()

    async def drain(self, *, deadline: float) -> bool:
        """Write everything pending, retrying until `deadline` (event-loop time); True if nothing is left."""
        backoff = 0.1
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.flush()
                return True
            except Exception as exc:  # noqa: BLE001
                if loop.time() + backoff > deadline:
                    log.error("dispatch_record_failed", count=len(self.pending),
                              error=f"{type(exc).__name__}: {exc}"[:300])
                    return False
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)

    async def _write(self, batch: list[Outcome]) -> dict[str, int]:
        return await write(self.rt.db, batch, now=self.rt.clock.now(), settings=self.rt.settings)
