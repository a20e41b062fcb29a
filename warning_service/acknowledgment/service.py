"""叫应: record an acknowledgment exactly once per notice per round, and the 响应反馈 that follows it.

The unique (notice_id, round) constraint decides who wins when a link tap, an SMS reply, a key press and a
duty officer's proxy arrive together: every caller is told it succeeded, only the winner changes anything.

What an answer stops, in the winner's transaction:
- the answered notice: state acknowledged, nothing more to do (next_action_at NULL, step done), and its
  queued re-calls (recall/deputy/escalation messages) cancelled;
- its chain — the deputy and escalation notices sharing its root (the primary notice the silence started
  from): open ones are closed, timed-out ones stop being chased, their queued messages are cancelled. When
  the answer comes from a deputy or from the level above, the silent primary notice stops being chased as
  well but keeps its state: the person it was for still never answered, and audits must say so.
Answers are refused (NotAcknowledgeable) once the warning is lifted or expired, or the notice was closed
without an answer; a timed-out notice can still be answered and is recorded as late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Integer, String, and_, case, delete, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service import labels
from warning_service.acknowledgment import fastpath
from warning_service.acknowledgment.models import Acknowledgment, AckPath
from warning_service.db import Database, UTCDateTime, dialect_name, upsert
from warning_service.delivery.models import OPEN_NOTICE_STATES, Notice, OutboxMessage
from warning_service.early_warning.models import EarlyWarning
from warning_service.errors import Conflict, Invalid, NotFound
from warning_service.ledger import service as ledger
from warning_service.logging import get_logger

log = get_logger(__name__)

# A timed-out notice may still be answered (late); a closed one may not.
ACKABLE_STATES = ("pending", "delivered", "timed_out")
# Messages that only exist to chase silence; an answer makes them pointless.
CHASE_KINDS = ("recall", "deputy", "escalation")
PROXY_METHODS = ("phone", "visit", "loudspeaker", "other")
PROXY_METHOD_ZH = labels.PROXY_METHOD


class NotAcknowledgeable(Conflict):
    """The notice can no longer be answered: warning lifted or expired, or the notice closed."""

    code = "not_acknowledgeable"


@dataclass(frozen=True)
class AckResult:
    notice_id: int
    warning_id: int
    person_id: int
    round: int
    status: Literal["acknowledged", "already_acknowledged"]
    acknowledged_at: datetime  # when the (winning) acknowledgment was recorded
    late: bool
    path: str  # the winning path
    acknowledgment_id: int | None

    @property
    def already_acknowledged(self) -> bool:
        return self.status == "already_acknowledged"

    def public(self) -> dict[str, Any]:
        """What a person's own device may be told: nothing about anyone else."""
        return {"status": self.status, "acknowledged_at": self.acknowledged_at.isoformat(), "late": self.late}


@dataclass(frozen=True)
class NoticeState:
    """The notice as an answer sees it, with its warning's state."""

    id: int
    round: int
    state: str
    reason: str
    root_id: int | None
    deadline: datetime | None
    warning_id: int
    person_id: int
    region_code: str
    acknowledged_at: datetime | None
    warning_state: str
    lifted_at: datetime | None
    expires_at: datetime | None


async def load_notice(session: AsyncSession, notice_id: int) -> NoticeState | None:
    """The notice and its warning's state in one query."""
    row = (await session.execute(
        select(Notice.id, Notice.round, Notice.state, Notice.reason, Notice.root_id, Notice.deadline,
               Notice.warning_id, Notice.person_id, Notice.region_code, Notice.acknowledged_at,
               EarlyWarning.state, EarlyWarning.lifted_at, EarlyWarning.expires_at)
        .join(EarlyWarning, EarlyWarning.id == Notice.warning_id)
        .where(Notice.id == notice_id))).first()
    return NoticeState(*row) if row else None


def gone(n: NoticeState, *, now: datetime, grace_hours: int) -> bool:
    """Its link has outlived the warning (lifted or expired) by more than the grace period."""
    ended = {"lifted": n.lifted_at, "expired": n.expires_at}.get(n.warning_state)
    return ended is not None and now > ended + timedelta(hours=grace_hours)


def refusal(n: NoticeState) -> NotAcknowledgeable | None:
    """Why this notice cannot be answered any more, or None if it can."""
    if n.warning_state == "lifted":
        return NotAcknowledgeable("the warning has been lifted; no acknowledgment is needed",
                                  "该预警已解除,无需再确认", field="notice_id", reason="lifted")
    if n.warning_state == "expired":
        return NotAcknowledgeable("the warning has expired; no acknowledgment is needed",
                                  "该预警已失效,无需再确认", field="notice_id", reason="expired")
    if n.state not in ACKABLE_STATES and n.state != "acknowledged":
        return NotAcknowledgeable("this notice was closed and needs no acknowledgment",
                                  "本次叫应已结束,无需再确认", field="notice_id", reason="closed")
    return None


async def acknowledge(session: AsyncSession, *, notice_id: int, path: str, now: datetime,
                      raw_input: str | None = None, source: str | None = None,
                      actor_user_id: int | None = None, proxy_method: str | None = None,
                      note: str | None = None, actor: str | None = None,
                      preloaded: NoticeState | None = None, try_fast: bool = True) -> AckResult:
    """Record that the notice was answered — once per round, whoever asks how often; see the module doc.

    `preloaded` is the caller's fresh `load_notice` of the same notice, to save a query on the hot path.
    """
    path = AckPath(path).value
    if path == AckPath.proxy:
        if proxy_method not in PROXY_METHODS:
            raise Invalid(f"method must be one of {', '.join(PROXY_METHODS)}",
                          "代确认方式必须是 电话/上门/喇叭/其他 之一", field="method")
        if actor_user_id is None:
            raise Invalid("a proxy acknowledgment needs the acting user", "代确认必须记录操作人员",
                          field="actor")
    actor = actor or _default_actor(path, None, source)
    if try_fast and preloaded is None and dialect_name(session) == "postgresql":
        fast = await fastpath.try_acknowledge(
            session, notice_id=notice_id, path=path, now=now, raw_input=raw_input, source=source,
            actor_user_id=actor_user_id, proxy_method=proxy_method if path == AckPath.proxy else None,
            note=note, actor=actor)
        if fast is not None and fast.updated:
            return await _fast_done(session, fast, notice_id=notice_id, path=path, now=now)
        if fast is not None:
            # Changed under the statement (lift, new round, sweep): undo, and look afresh below — unless a
            # new round began, which this answer was not given to.
            await session.execute(delete(Acknowledgment).where(Acknowledgment.id == fast.ack_id))
            preloaded = await load_notice(session, notice_id)
            if preloaded is not None and preloaded.round != fast.round:
                raise NotAcknowledgeable("the warning changed meanwhile; try again", "预警已更新,请重新确认",
                                         field="notice_id", reason="new_round")
    n = preloaded if preloaded is not None and preloaded.id == notice_id else None
    n = n or await load_notice(session, notice_id)
    if n is None:
        raise NotFound(f"notice {notice_id} not found", f"通知 {notice_id} 不存在", field="notice_id")
    if n.state == "acknowledged":
        return await _already(session, n, path=path, source=source, now=now)
    if (why := refusal(n)) is not None:
        raise why
    root = n.root_id if n.reason != "primary" and n.root_id else n.id
    if root != n.id and dialect_name(session) == "postgresql":
        # Lock the chain's root before the notice itself, as an answer to the root does, so that a silent
        # person answering at the moment their deputy does cannot deadlock the two.
        await session.execute(select(Notice.id).where(Notice.id == root).with_for_update(key_share=True))

    won = (await session.execute(_insert_ack(
        notice_id=notice_id, path=path, now=now, raw_input=raw_input, source=source,
        actor_user_id=actor_user_id, proxy_method=proxy_method if path == AckPath.proxy else None, note=note,
        dialect=dialect_name(session)))).first()
    if won is None:
        # Either someone else's answer won the race, or the notice stopped being answerable meanwhile.
        fresh = await load_notice(session, notice_id)
        assert fresh is not None
        if fresh.state == "acknowledged" or await _ack_row(session, notice_id, fresh.round):
            return await _already(session, fresh, path=path, source=source, now=now)
        raise refusal(fresh) or NotAcknowledgeable("the notice changed meanwhile; try again",
                                                   "通知状态已变化,请重试", field="notice_id")
    ack_id, ack_round, late = won.id, won.round, bool(won.late)

    changed = await session.execute(
        update(Notice)
        .where(Notice.id == notice_id, Notice.round == ack_round, Notice.state.in_(ACKABLE_STATES))
        .values(state="acknowledged", acknowledged_at=now, next_action_at=None, step="done"))
    if changed.rowcount != 1:
        # A lift or a new round committed between our insert and this update: undo, so the caller's
        # transaction holds nothing half-done and can still commit whatever else it did.
        await session.execute(delete(Acknowledgment).where(Acknowledgment.id == ack_id))
        fresh = await load_notice(session, notice_id)
        assert fresh is not None
        raise refusal(fresh) or NotAcknowledgeable("the notice changed meanwhile; try again",
                                                   "通知状态已变化,请重试", field="notice_id")

    stopped = await _stop_chain(session, root=root, answered=notice_id, now=now)
    cancelled = await cancel_chase(session, notice_ids=[notice_id, *stopped], now=now)
    details: dict[str, Any] = {"notice_id": notice_id, "warning_id": n.warning_id, "person_id": n.person_id,
                               "round": ack_round, "path": path, "late": late, "source": source,
                               "raw_input": raw_input[:200] if raw_input else None}
    if path == AckPath.proxy:
        details.update(proxy_method=proxy_method, note=note, actor_user_id=actor_user_id)
    if stopped or cancelled:
        details.update(chain_stopped=stopped, messages_cancelled=cancelled)
    await ledger.append(session, at=now, actor=actor or _default_actor(path, n.person_id, source) or "",
                        action="ack.recorded", subject_type="notice", subject_id=notice_id, details=details)
    log.info("ack_recorded", notice_id=notice_id, warning_id=n.warning_id, path=path, late=late,
             round=ack_round, chain_stopped=len(stopped), cancelled=cancelled)
    return AckResult(notice_id=notice_id, warning_id=n.warning_id, person_id=n.person_id, round=ack_round,
                     status="acknowledged", acknowledged_at=now, late=late, path=path,
                     acknowledgment_id=ack_id)


def _insert_ack(*, notice_id: int, path: str, now: datetime, raw_input: str | None, source: str | None,
                actor_user_id: int | None, proxy_method: str | None, note: str | None, dialect: str) -> Any:
    """INSERT … SELECT … ON CONFLICT (notice_id, round) DO NOTHING RETURNING: the database picks the winner.

    The SELECT re-checks that the notice is answerable and takes its current round, so a round restarted
    or a warning lifted since the caller looked cannot slip through.
    """
    at = literal(now, UTCDateTime)
    src = (
        select(Notice.id, Notice.round, Notice.warning_id, Notice.person_id, literal(path, String), at,
               case((and_(Notice.deadline.is_not(None), Notice.deadline < at), True), else_=False),
               literal(raw_input[:500] if raw_input else None, String),
               literal(source[:100] if source else None, String), literal(proxy_method, String),
               literal(note[:1000] if note else None, String), literal(actor_user_id, Integer))
        .join(EarlyWarning, EarlyWarning.id == Notice.warning_id)
        .where(Notice.id == notice_id, Notice.state.in_(ACKABLE_STATES), EarlyWarning.state == "active")
    )
    stmt = upsert(Acknowledgment.__table__, dialect=dialect, index_elements=["notice_id", "round"],
                  update_columns=None)
    return stmt.from_select(
        ["notice_id", "round", "warning_id", "person_id", "path", "acknowledged_at", "late", "raw_input",
         "source", "proxy_method", "note", "actor_user_id"], src,
    ).returning(Acknowledgment.id, Acknowledgment.round, Acknowledgment.late)


async def _ack_row(session: AsyncSession, notice_id: int, round_: int) -> Acknowledgment | None:
    return (await session.execute(select(Acknowledgment).where(
        Acknowledgment.notice_id == notice_id, Acknowledgment.round == round_))).scalar_one_or_none()


async def _already(session: AsyncSession, n: NoticeState, *, path: str, source: str | None,
                   now: datetime) -> AckResult:
    """A second answer: told it succeeded, logged, nothing written."""
    row = await _ack_row(session, n.id, n.round)
    log.info("ack_duplicate", notice_id=n.id, warning_id=n.warning_id, path=path, source=source,
             winner_path=row.path if row else None)
    return AckResult(notice_id=n.id, warning_id=n.warning_id, person_id=n.person_id, round=n.round,
                     status="already_acknowledged",
                     acknowledged_at=row.acknowledged_at if row else (n.acknowledged_at or now),
                     late=bool(row.late) if row else False, path=row.path if row else path,
                     acknowledgment_id=row.id if row else None)


async def _stop_chain(session: AsyncSession, *, root: int, answered: int, now: datetime) -> list[int]:
    """End the escalation chain the answered notice belongs to; returns the notices touched."""
    stopped: list[int] = []
    if root != answered:
        res = await session.execute(
            update(Notice).where(Notice.id == root, Notice.state.in_(ACKABLE_STATES))
            .values(next_action_at=None, step="done").returning(Notice.id))
        stopped += list(res.scalars())
    first = await _close_chain(session, root=root, answered=answered, now=now, skip=[])
    if first:
        # While the first pass waited for a notice an escalation sweep held, that sweep may have opened
        # more of this chain; its statement could not see them, this one can.
        first += await _close_chain(session, root=root, answered=answered, now=now, skip=first)
    return stopped + first


async def _close_chain(session: AsyncSession, *, root: int, answered: int, now: datetime, skip: list[int]
                       ) -> list[int]:
    is_open = Notice.state.in_(OPEN_NOTICE_STATES)
    stmt = (update(Notice)
            .where(Notice.root_id == root, Notice.id != answered, Notice.state.in_(ACKABLE_STATES))
            .values(state=case((is_open, "closed"), else_=Notice.state),
                    closed_at=case((is_open, literal(now, UTCDateTime)), else_=Notice.closed_at),
                    next_action_at=None, step="done")
            .returning(Notice.id))
    if skip:
        stmt = stmt.where(Notice.id.not_in(skip))
    return list((await session.execute(stmt)).scalars())


async def cancel_chase(session: AsyncSession, *, notice_ids: list[int], now: datetime) -> int:
    """Cancel the still-queued re-calls, deputy calls and escalations of these notices."""
    # coalesce() keeps the planner on the notice_id index: `status = 'queued'` would match the dispatcher's
    # partial queue index, and right after a province-wide issue (statistics not yet refreshed) PostgreSQL
    # estimates a handful of queued rows and scans all 150,000 of them for every answer.
    queued = func.coalesce(OutboxMessage.status, "") == "queued"
    res = await session.execute(
        update(OutboxMessage).where(OutboxMessage.notice_id.in_(notice_ids), queued,
                                    OutboxMessage.kind.in_(CHASE_KINDS))
        .values(status="cancelled", error_code="acknowledged", updated_at=now))
    return res.rowcount or 0


def _default_actor(path: str, person_id: int | None, source: str | None) -> str | None:
    """Who answered, for the ledger: the phone that replied or pressed 1, else the person's record."""
    if path in (AckPath.sms_reply, AckPath.voice_key) and source:
        return f"person:{source}"
    return f"person:{person_id}" if person_id is not None else None


async def acknowledge_first(db: Database, *, notice_id: int, path: str, now: datetime,
                            raw_input: str | None = None, source: str | None = None) -> AckResult | None:
    """A person's first answer to a primary notice, committed on its own (PostgreSQL); None otherwise.

    The link's hot path. When it returns None nothing was written and the caller goes on with
    `acknowledge(..., try_fast=False)` in its session, which tells a second answer from a refusal.
    """
    if db.is_sqlite:
        return None
    fast = await fastpath.acknowledge_alone(
        db, notice_id=notice_id, path=AckPath(path).value, now=now, raw_input=raw_input, source=source,
        actor_user_id=None, proxy_method=None, note=None, actor=_default_actor(path, None, source))
    if fast is None:
        return None
    if fast.chain:  # no session at all in the common case: this is the hot path
        async with db.session() as session:
            await _close_rest_of_chain(session, fast, notice_id=notice_id, now=now)
    return _fast_result(fast, notice_id=notice_id, path=path, now=now)


async def answer(db: Database, *, notice_id: int, path: str, now: datetime, raw_input: str | None = None,
                 source: str | None = None) -> AckResult:
    """A person's answer in transactions of its own: the one-statement hot path, else the general path."""
    result = await acknowledge_first(db, notice_id=notice_id, path=path, now=now, raw_input=raw_input,
                                     source=source)
    if result is not None:
        return result
    async with db.session() as session:
        return await acknowledge(session, notice_id=notice_id, path=path, now=now, raw_input=raw_input,
                                 source=source, try_fast=False)


async def _fast_done(session: AsyncSession, fast: fastpath.FastResult, *, notice_id: int, path: str,
                     now: datetime) -> AckResult:
    """Finish what the one-statement path started: look at the chain a second time."""
    if fast.chain:
        await _close_rest_of_chain(session, fast, notice_id=notice_id, now=now)
    return _fast_result(fast, notice_id=notice_id, path=path, now=now)


async def _close_rest_of_chain(session: AsyncSession, fast: fastpath.FastResult, *, notice_id: int,
                               now: datetime) -> None:
    # As in _stop_chain: a sweep may have opened more of the chain while the statement waited.
    more = await _close_chain(session, root=notice_id, answered=notice_id, now=now, skip=fast.chain)
    if more:
        await cancel_chase(session, notice_ids=more, now=now)


def _fast_result(fast: fastpath.FastResult, *, notice_id: int, path: str, now: datetime) -> AckResult:
    log.info("ack_recorded", notice_id=notice_id, warning_id=fast.warning_id, path=path, late=fast.late,
             round=fast.round, chain_stopped=len(fast.chain), cancelled=fast.cancelled)
    return AckResult(notice_id=notice_id, warning_id=fast.warning_id, person_id=fast.person_id,
                     round=fast.round, status="acknowledged", acknowledged_at=now, late=fast.late, path=path,
                     acknowledgment_id=fast.ack_id)
