"""叫应: a notice answered — once per round, however often and by whatever path — by one rule, written once.

What an answer does, in the answering transaction:
1. claim    the notice → acknowledged, nothing more to do; only while it can still be answered and its
            warning is in force. The row lock this UPDATE takes decides who wins when a link tap, an SMS
            reply, a key press and a duty officer's proxy arrive together: the others find it acknowledged.
2. record   the acknowledgment of the notice's current round, late when past its deadline
            (UNIQUE(notice_id, round) remains the database's guarantee).
3. chain    for the silent person's own answer or their deputy's: the deputy and escalation notices sharing
            its root, open ones closed, timed-out ones no longer chased. A deputy's answer also stops the
            silent root being chased, but the root keeps its state: the person it was for never answered,
            and audits must say so. An answer to an escalation notice says only that the level above was
            informed: it ends what that notice's own silence set off higher up (the notices opened
            `escalation_of` it, and theirs), never the silent person's chase — that runs on until they
            answer or someone records a proxy answer, with its method, on their notice.
4. chase    queued re-calls, deputy calls and escalations of all of them cancelled.
5. ledger   "ack.recorded" with who, how, when and what it stopped.

The rule has two forms built from the same statement builders (`_claim`, `_record`, `_close_chain`,
`_cancel`, `_details`):
- portable: the steps one statement each, in the caller's transaction, on every database;
- one statement (PostgreSQL, primary notices): the steps as data-modifying CTEs of a single statement —
  one round trip, which is what lets a province answer thousands of times a second. It claims primary
  notices only, so a deputy's or an escalation notice always takes the portable form (the contract test
  checks that the two leave the same rows for each). It runs inside a session
  (`acknowledge`) or alone on the raw pool (`answer`, the link's and SMS reply's hot path).
When the one statement changes nothing — a second answer, a refusal, a deputy's notice, or a notice an
escalation sweep advanced while the statement waited for it (the sweep may have opened chain notices the
statement's snapshot cannot see) — the portable form works out what to do; alone on the raw pool, one read
first tells a second answer (the commonest of these: a second tap, a page reloaded) without a session.
When it closed a chain, a second look (another statement, on the raw pool too) closes what the sweep may have
opened meanwhile and cancels its chase (`_rest_of_chain`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Literal

import asyncpg
from sqlalchemy import (
    JSON,
    Integer,
    String,
    all_,
    any_,
    bindparam,
    case,
    cast,
    exists,
    false,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.acknowledgment.models import Acknowledgment, AckPath
from warning_service.db import Database, UTCDateTime
from warning_service.delivery.models import OutboxMessage
from warning_service.dialect import in_ids, is_postgresql
from warning_service.early_warning.models import EarlyWarning, WarningState
from warning_service.errors import Conflict, Invalid, NotFound
from warning_service.ledger import service as ledger
from warning_service.ledger.models import LedgerPending
from warning_service.logging import get_logger
from warning_service.notice.models import ANSWERABLE_STATES, OPEN_STATES, Notice, NoticeReason, NoticeState, NoticeStep
from warning_service.notice.service import CANCELLED_BY_ANSWER, cancel_chase, chase_of

log = get_logger(__name__)
N, W, A, OUTBOX, LEDGER = (Notice.__table__, EarlyWarning.__table__, Acknowledgment.__table__,
                           OutboxMessage.__table__, LedgerPending.__table__)
PROXY_METHODS = ("phone", "visit", "loudspeaker", "other")
ACTION = "ack.recorded"
PARAM = "a_"
ANSWERED = {"state": NoticeState.acknowledged.value, "next_action_at": null(), "step": NoticeStep.done.value}
ACK_COLUMNS = ["notice_id", "round", "warning_id", "person_id", "path", "acknowledged_at", "late", "raw_input",
               "source", "proxy_method", "note", "actor_user_id"]
# What the ledger entry says, in this order; a proxy answer adds how it was obtained, a chain stopped what.
DETAIL_KEYS = ("notice_id", "warning_id", "person_id", "round", "path", "late", "source", "raw_input")
PROXY_KEYS = ("proxy_method", "note", "actor_user_id")


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
    # A second answer's notice as it was read (its warning's state included): whether its link outlived the
    # warning is then known without reading it again.
    notice: LoadedNotice | None = field(default=None, compare=False, repr=False)

    @property
    def already_acknowledged(self) -> bool:
        return self.status == "already_acknowledged"

    def public(self) -> dict[str, Any]:
        """What a person's own device may be told: nothing about anyone else."""
        return {"status": self.status, "acknowledged_at": self.acknowledged_at.isoformat(), "late": self.late}


@dataclass(frozen=True)
class LoadedNotice:
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

    def ended(self, now: datetime) -> tuple[str, datetime | None] | None:
        """("lifted" | "expired", when) once the warning is over — an expiry counts from `expires_at`,
        before the worker gets round to marking it."""
        if self.warning_state == WarningState.lifted:
            return "lifted", self.lifted_at
        if self.expires_at is not None and (self.warning_state == WarningState.expired or self.expires_at <= now):
            return "expired", self.expires_at
        return None


@dataclass(frozen=True)
class Answer:
    """One answer's inputs, validated and cut to the columns' lengths once for both forms."""

    path: str
    raw_input: str | None = None
    source: str | None = None
    actor_user_id: int | None = None
    proxy_method: str | None = None
    note: str | None = None
    actor: str | None = None  # explicit actor for the ledger; else derived (`_default_actor`)

    @classmethod
    def of(cls, *, path: str, raw_input: str | None, source: str | None, actor_user_id: int | None,
           proxy_method: str | None, note: str | None, actor: str | None) -> Answer:
        path = AckPath(path).value
        if path == AckPath.proxy:
            if proxy_method not in PROXY_METHODS:
                raise Invalid(f"method must be one of {', '.join(PROXY_METHODS)}",
                              "代确认方式必须是 电话/上门/喇叭/其他 之一", field="method")
            if actor_user_id is None:
                raise Invalid("a proxy acknowledgment needs the acting user", "代确认必须记录操作人员",
                              field="actor")
        else:
            proxy_method = None
        if actor is None and path in (AckPath.sms_reply, AckPath.voice_key) and source:
            actor = f"person:{source}"  # the phone that replied or pressed 1
        return cls(path=path, raw_input=raw_input[:500] if raw_input else None,
                   source=source[:100] if source else None, actor_user_id=actor_user_id,
                   proxy_method=proxy_method, note=note[:1000] if note else None, actor=actor)

    @property
    def raw_short(self) -> str | None:
        return self.raw_input[:200] if self.raw_input else None

    def params(self, *, notice_id: int, now: datetime) -> dict[str, Any]:
        """The one statement's parameters. Prefixed: a parameter named like a column of a table the statement
        writes (notice_id, note, source…) would be taken by SQLAlchemy as a value to SET."""
        values = {"notice_id": notice_id, "now": now, "raw_input": self.raw_input, "raw_short": self.raw_short,
                  "source": self.source, "proxy_method": self.proxy_method, "note": self.note,
                  "actor_user_id": self.actor_user_id, "actor": self.actor}
        return {PARAM + k: v for k, v in values.items()}


# --- reading --------------------------------------------------------------------------------------------------

# LoadedNotice's fields, in order.
LOADED = (N.c.id, N.c.round, N.c.state, N.c.reason, N.c.root_id, N.c.deadline, N.c.warning_id, N.c.person_id,
          N.c.region_code, N.c.acknowledged_at, W.c.state, W.c.lifted_at, W.c.expires_at)


async def load_notice(session: AsyncSession, notice_id: int) -> LoadedNotice | None:
    """The notice and its warning's state in one query."""
    row = (await session.execute(
        select(*LOADED).join(W, W.c.id == N.c.warning_id).where(N.c.id == notice_id))).first()
    return LoadedNotice(*row) if row else None


def gone(n: LoadedNotice, *, now: datetime, grace_hours: int) -> bool:
    """Its link has outlived the warning (lifted or expired) by more than the grace period."""
    ended = n.ended(now)
    return ended is not None and ended[1] is not None and now > ended[1] + timedelta(hours=grace_hours)


def refusal(n: LoadedNotice, *, now: datetime) -> NotAcknowledgeable | None:
    """Why this notice cannot be answered any more, or None if it can."""
    ended = n.ended(now)
    if ended is not None and ended[0] == "lifted":
        return NotAcknowledgeable("the warning has been lifted; no acknowledgment is needed",
                                  "该预警已解除,无需再确认", field="notice_id", reason="lifted")
    if ended is not None:
        return NotAcknowledgeable("the warning has expired; no acknowledgment is needed",
                                  "该预警已失效,无需再确认", field="notice_id", reason="expired")
    if n.state not in ANSWERABLE_STATES and n.state != NoticeState.acknowledged:
        return NotAcknowledgeable("this notice was closed and needs no acknowledgment",
                                  "本次叫应已结束,无需再确认", field="notice_id", reason="closed")
    return None


# --- the rule's statements --------------------------------------------------------------------------------------

def _in_force(now: Any) -> Any:
    """SQL: the notice's warning is active and has not run out (the expiry job may not have run yet)."""
    return exists().where(W.c.id == N.c.warning_id, W.c.state == WarningState.active,
                          or_(W.c.expires_at.is_(None), W.c.expires_at > now))


def _claim(notice_id: Any, now: Any) -> Any:
    """Step 1: the notice → acknowledged, if it can still be answered; RETURNING what the record needs."""
    return (update(N).where(N.c.id == notice_id, N.c.state.in_(ANSWERABLE_STATES), _in_force(now))
            .values(**ANSWERED, acknowledged_at=now)
            .returning(N.c.id, N.c.round, N.c.deadline, N.c.warning_id, N.c.person_id))


def _record(claimed: Any, now: Any, *, path: str, p: dict[str, Any]) -> Any:
    """Step 2: the acknowledgment row, from the claimed notice's values."""
    late = func.coalesce(claimed.c.deadline < now, false())
    src = select(claimed.c.id, claimed.c.round, claimed.c.warning_id, claimed.c.person_id, literal(path, String),
                 now, late, p["raw_input"], p["source"], p["proxy_method"], p["note"], p["actor_user_id"])
    return (insert(A).from_select(ACK_COLUMNS, src)
            .returning(A.c.id, A.c.round, A.c.late, A.c.warning_id, A.c.person_id))


def _close_chain(root: Any, answered: Any, now: Any) -> Any:
    """Step 3: the chain's other notices — open ones closed, timed-out ones kept but no longer chased."""
    is_open = N.c.state.in_(OPEN_STATES)
    return (update(N)
            .where(N.c.root_id == root, N.c.id != answered, N.c.state.in_(ANSWERABLE_STATES))
            .values(state=case((is_open, NoticeState.closed.value), else_=N.c.state),
                    closed_at=case((is_open, now), else_=N.c.closed_at),
                    next_action_at=null(), step=NoticeStep.done.value)
            .returning(N.c.id))


def _cancel(among: Any, now: Any) -> Any:
    """Step 4: their queued chasing messages, cancelled (`among`: a predicate over a notice id column)."""
    return update(OUTBOX).where(*chase_of(among)).values(**CANCELLED_BY_ANSWER, updated_at=now)


def _details(v: dict[str, Any], *, path: str) -> list[tuple[str, Any]]:
    """Step 5's details, as (key, value) pairs; `v` holds Python values or SQL expressions alike."""
    keys = DETAIL_KEYS + (PROXY_KEYS if path == AckPath.proxy else ())
    return [(k, v[k]) for k in keys]


# --- the one-statement form (PostgreSQL) -------------------------------------------------------------------------

@cache
def one_statement(path: str) -> Any:
    """The rule for a primary notice as one statement of data-modifying CTEs (see the module doc)."""
    nid = bindparam(PARAM + "notice_id", type_=Integer)
    now = bindparam(PARAM + "now", type_=UTCDateTime)
    p = {k: bindparam(PARAM + k, type_=t) for k, t in (("raw_input", String), ("raw_short", String), ("source", String),
                                                ("proxy_method", String), ("note", String),
                                                ("actor_user_id", Integer), ("actor", String))}
    # The notice as this statement's snapshot sees it. Had a sweep advanced it while the claim waited for its
    # lock, the sweep may have opened chain notices this snapshot cannot see: the claim then matches nothing
    # and the portable form, whose statements each see what is committed, takes over.
    snap = select(N.c.step, N.c.attempt_count, N.c.next_action_at).where(N.c.id == nid).cte("snap")
    claimed = _claim(nid, now).where(
        N.c.reason == NoticeReason.primary, N.c.step == snap.c.step, N.c.attempt_count == snap.c.attempt_count,
        N.c.next_action_at.is_not_distinct_from(snap.c.next_action_at)).cte("claimed")
    ins = _record(claimed, now, path=path, p=p).cte("ins")
    won = exists(select(ins.c.id))
    chain = _close_chain(nid, nid, now).where(won).cte("chain")
    chain_ids = select(func.array_agg(chain.c.id)).scalar_subquery()
    stopped_ids = func.array_append(chain_ids, nid, type_=ARRAY(Integer))
    cancelled = (_cancel(lambda col: col == any_(stopped_ids), now).where(won).returning(OUTBOX.c.id)
                 .cte("cancelled"))
    n_cancelled = select(func.count()).select_from(cancelled).scalar_subquery()
    values = {"notice_id": nid, "warning_id": ins.c.warning_id, "person_id": ins.c.person_id,
              "round": ins.c.round, "path": literal(path, String), "late": ins.c.late, "source": p["source"],
              "raw_input": p["raw_short"], **{k: p[k] for k in PROXY_KEYS}}
    details = func.jsonb_build_object(*[x for k, v in _details(values, path=path) for x in (literal(k), v)],
                                      type_=JSONB)
    no_ids = literal_column("'{}'::integer[]")
    stopped = func.jsonb_build_object(literal("chain_stopped"), func.coalesce(chain_ids, no_ids),
                                      literal("messages_cancelled"), n_cancelled, type_=JSONB)
    details = details.op("||", return_type=JSONB)(
        case((or_(exists(select(chain.c.id)), n_cancelled > 0), stopped), else_=literal_column("'{}'::jsonb")))
    actor = func.coalesce(p["actor"], literal("person:") + cast(ins.c.person_id, String))
    led = (insert(LEDGER).from_select(
        ["at", "actor", "action", "subject_type", "subject_id", "details"],
        select(now, actor, literal(ACTION), literal("notice"), cast(nid, String), cast(details, JSON)))
        .returning(LEDGER.c.id).cte("led"))
    return select(ins.c.id, ins.c.round, ins.c.late, ins.c.warning_id, ins.c.person_id, chain_ids, n_cancelled,
                  select(func.count()).select_from(led).scalar_subquery())


@dataclass(frozen=True)
class _Compiled:
    sql: str
    order: tuple[str, ...]
    literals: dict[str, Any]


def _for_asyncpg(stmt: Any, placeholders: dict[str, Any]) -> _Compiled:
    """A statement as asyncpg SQL ($n parameters) for the raw pool.

    Compiled with placeholder values so that the constant IN lists expand into plain parameters; every
    call supplies its own values for the answer's parameters by name.
    """
    c = stmt.params(**placeholders).compile(dialect=postgresql.asyncpg.dialect(),
                                            compile_kwargs={"render_postcompile": True})
    state = c.construct_expanded_state()
    return _Compiled(sql=str(c), order=tuple(state.positiontup or ()), literals=dict(state.parameters))


@cache
def _compiled(path: str) -> _Compiled:
    """The one statement, compiled once per path."""
    return _for_asyncpg(one_statement(path),
                        Answer(path=path).params(notice_id=0, now=datetime.fromtimestamp(0, UTC)))


@cache
def _compiled_seen() -> _Compiled:
    """The notice as `load_notice` reads it, with the acknowledgment of its current round (if any)."""
    nid = bindparam(PARAM + "notice_id", type_=Integer)
    stmt = (select(*LOADED, A.c.id, A.c.path, A.c.acknowledged_at, A.c.late)
            .join(W, W.c.id == N.c.warning_id)
            .outerjoin(A, (A.c.notice_id == N.c.id) & (A.c.round == N.c.round))
            .where(N.c.id == nid))
    return _for_asyncpg(stmt, {PARAM + "notice_id": 0})


@dataclass(frozen=True)
class _Won:
    ack_id: int
    round: int
    late: bool
    warning_id: int
    person_id: int
    chain: list[int]
    cancelled: int


def _won(row: Any) -> _Won:
    return _Won(ack_id=row[0], round=row[1], late=bool(row[2]), warning_id=row[3], person_id=row[4],
                chain=list(row[5] or []), cancelled=int(row[6]))


async def _one_statement_alone(db: Database, a: Answer, *, notice_id: int, now: datetime) -> _Won | None:
    c = _compiled(a.path)
    values = {**c.literals, **a.params(notice_id=notice_id, now=now)}
    pool = await db.raw_pool()
    async with pool.acquire() as conn:
        try:
            row = await conn.fetchrow(c.sql, *[values[k] for k in c.order])
        except asyncpg.UniqueViolationError:
            return None  # an acknowledgment of this round already exists: the portable form says which
    return _won(row) if row is not None else None


@cache
def _rest_of_chain() -> Any:
    """`_finish`'s second look as one statement: the chain's answerable notices the one statement did not see
    (those not in `skip`), closed as `_close_chain` closes them, and their queued chase cancelled."""
    nid = bindparam(PARAM + "notice_id", type_=Integer)
    now = bindparam(PARAM + "now", type_=UTCDateTime)
    skip = bindparam(PARAM + "skip", type_=ARRAY(Integer))
    more = _close_chain(nid, nid, now).where(N.c.id != all_(skip)).cte("more")
    # An array, not IN (SELECT …): the planner cannot size the CTE, and would scan the whole outbox.
    more_ids = func.coalesce(select(func.array_agg(more.c.id)).scalar_subquery(),
                             literal_column("'{}'::integer[]"), type_=ARRAY(Integer))
    cancelled = _cancel(lambda col: col == any_(more_ids), now).returning(OUTBOX.c.id).cte("cancelled")
    return select(more_ids, select(func.count()).select_from(cancelled).scalar_subquery())


@cache
def _compiled_rest_of_chain() -> _Compiled:
    return _for_asyncpg(_rest_of_chain(), {PARAM + "notice_id": 0, PARAM + "now": datetime.fromtimestamp(0, UTC),
                                           PARAM + "skip": [0]})


async def _rest_of_chain_alone(db: Database, *, notice_id: int, now: datetime, skip: list[int]) -> None:
    """`_finish` in an autocommit statement of its own on the raw pool: what it costs in a session (a ping,
    BEGIN, the statements, COMMIT) is several times the statement."""
    c = _compiled_rest_of_chain()
    values = {**c.literals, PARAM + "notice_id": notice_id, PARAM + "now": now, PARAM + "skip": skip}
    pool = await db.raw_pool()
    async with pool.acquire() as conn:
        await conn.fetchrow(c.sql, *[values[k] for k in c.order])


async def _already_alone(db: Database, a: Answer, *, notice_id: int) -> AckResult | None:
    """A second answer told from one read on the raw pool, as `_already` tells it; None when the notice is not
    acknowledged (or its acknowledgment cannot be found): the portable form then works out what to do."""
    c = _compiled_seen()
    values = {**c.literals, PARAM + "notice_id": notice_id}
    pool = await db.raw_pool()
    async with pool.acquire() as conn:
        row = await conn.fetchrow(c.sql, *[values[k] for k in c.order])
    if row is None or row[2] != NoticeState.acknowledged or row[13] is None:
        return None
    n = LoadedNotice(*row[:13])
    return _duplicate(n, a, ack_id=row[13], path=row[14], acknowledged_at=row[15], late=bool(row[16]))


# --- the operations ---------------------------------------------------------------------------------------------

async def acknowledge(session: AsyncSession, *, notice_id: int, path: str, now: datetime,
                      raw_input: str | None = None, source: str | None = None,
                      actor_user_id: int | None = None, proxy_method: str | None = None,
                      note: str | None = None, actor: str | None = None,
                      one_statement_first: bool = True) -> AckResult:
    """Record that the notice was answered, in the caller's transaction; see the module doc."""
    a = Answer.of(path=path, raw_input=raw_input, source=source, actor_user_id=actor_user_id,
                  proxy_method=proxy_method, note=note, actor=actor)
    if one_statement_first and is_postgresql(session):
        row = (await session.execute(one_statement(a.path), a.params(notice_id=notice_id, now=now))).first()
        if row is not None:
            return await _finish(session, _won(row), a, notice_id=notice_id, now=now)
    return await _portable(session, a, notice_id=notice_id, now=now)


async def answer(db: Database, *, notice_id: int, path: str, now: datetime, raw_input: str | None = None,
                 source: str | None = None) -> AckResult:
    """A person's answer in transactions of its own: on PostgreSQL first as one autocommit statement on the
    raw pool (one round trip, no session), else — or when that changed nothing — the portable form, which
    answers a whole escalation digest when the notice is one of its (its message listed them all)."""
    a = Answer.of(path=path, raw_input=raw_input, source=source, actor_user_id=None, proxy_method=None,
                  note=None, actor=None)
    if not db.is_sqlite:
        won = await _one_statement_alone(db, a, notice_id=notice_id, now=now)
        if won is not None:
            if won.chain:  # the common case has none
                await _rest_of_chain_alone(db, notice_id=notice_id, now=now, skip=won.chain)
            return _result(won, a, notice_id=notice_id, now=now)
        already = await _already_alone(db, a, notice_id=notice_id)
        if already is not None:
            return already
    async with db.session() as session:
        result = await _portable(session, a, notice_id=notice_id, now=now)
        # One escalation message lists several silent people (a digest): answering it answers for each.
        for other in await _rest_of_digest(session, notice_id):
            try:
                await _portable(session, a, notice_id=other, now=now)
            except NotAcknowledgeable:
                pass  # closed meanwhile (the silent person answered): nothing to inform about
        return result


async def _rest_of_digest(session: AsyncSession, notice_id: int) -> list[int]:
    """The other notices still to answer in the escalation digest this notice's message belongs to."""
    digest = select(N.c.digest_id).where(N.c.id == notice_id).scalar_subquery()
    return list((await session.execute(select(N.c.id).where(
        N.c.digest_id == digest, N.c.id != notice_id, N.c.state.in_(ANSWERABLE_STATES)).order_by(N.c.id)
    )).scalars())


async def _finish(session: AsyncSession, won: _Won, a: Answer, *, notice_id: int, now: datetime) -> AckResult:
    """After the one statement closed a chain: a second look, as the portable form takes (see `_stop_chain`)."""
    if won.chain:
        more = await _close_chain_rest(session, root=notice_id, answered=notice_id, now=now, skip=won.chain)
        if more:
            await cancel_chase(session, notice_ids=more, now=now)
    return _result(won, a, notice_id=notice_id, now=now)


async def _portable(session: AsyncSession, a: Answer, *, notice_id: int, now: datetime) -> AckResult:
    n = await load_notice(session, notice_id)
    if n is None:
        raise NotFound(f"notice {notice_id} not found", f"通知 {notice_id} 不存在", field="notice_id")
    if n.state == NoticeState.acknowledged:
        return await _already(session, n, a, now=now)
    if (why := refusal(n, now=now)) is not None:
        raise why
    root = n.root_id if n.reason != NoticeReason.primary and n.root_id else n.id
    if root != n.id and is_postgresql(session):
        # Lock the chain's root before the notice itself, as an answer to the root does, so that a silent
        # person answering at the moment their deputy does cannot deadlock the two.
        await session.execute(select(N.c.id).where(N.c.id == root).with_for_update(key_share=True))
    at = literal(now, UTCDateTime)
    if (await session.execute(_claim(notice_id, at))).first() is None:
        # Someone else's answer won, or the notice stopped being answerable, since we looked.
        fresh = await load_notice(session, notice_id)
        assert fresh is not None
        if fresh.state == NoticeState.acknowledged:
            return await _already(session, fresh, a, now=now)
        raise refusal(fresh, now=now) or NotAcknowledgeable("the notice changed meanwhile; try again",
                                                            "通知状态已变化,请重试", field="notice_id")
    claimed = select(N.c.id, N.c.round, N.c.deadline, N.c.warning_id, N.c.person_id).where(
        N.c.id == notice_id).subquery()
    p = {k: literal(v, t) for k, v, t in (("raw_input", a.raw_input, String), ("source", a.source, String),
                                          ("proxy_method", a.proxy_method, String), ("note", a.note, String),
                                          ("actor_user_id", a.actor_user_id, Integer))}
    won = (await session.execute(_record(claimed, at, path=a.path, p=p))).one()
    if n.reason == NoticeReason.escalation:
        stopped = await _stop_above(session, answered=notice_id, now=now)
    else:
        stopped = await _stop_chain(session, root=root, answered=notice_id, now=now)
    cancelled = await cancel_chase(session, notice_ids=[notice_id, *stopped], now=now)
    values = {"notice_id": notice_id, "warning_id": won.warning_id, "person_id": won.person_id,
              "round": won.round, "path": a.path, "late": bool(won.late), "source": a.source,
              "raw_input": a.raw_short, "proxy_method": a.proxy_method, "note": a.note,
              "actor_user_id": a.actor_user_id}
    details = dict(_details(values, path=a.path))
    if stopped or cancelled:
        details.update(chain_stopped=stopped, messages_cancelled=cancelled)
    await ledger.append(session, at=now, actor=a.actor or f"person:{won.person_id}", action=ACTION,
                        subject_type="notice", subject_id=notice_id, details=details)
    return _result(_Won(ack_id=won.id, round=won.round, late=bool(won.late), warning_id=won.warning_id,
                        person_id=won.person_id, chain=stopped, cancelled=cancelled), a, notice_id=notice_id,
                   now=now)


async def _stop_chain(session: AsyncSession, *, root: int, answered: int, now: datetime) -> list[int]:
    """Step 3 for the portable form; returns the notices touched."""
    stopped: list[int] = []
    if root != answered:
        res = await session.execute(
            update(N).where(N.c.id == root, N.c.state.in_(ANSWERABLE_STATES))
            .values(next_action_at=None, step=NoticeStep.done.value).returning(N.c.id))
        stopped += list(res.scalars())
    first = await _close_chain_rest(session, root=root, answered=answered, now=now, skip=[])
    if first:
        # While the first pass waited for a notice an escalation sweep held, that sweep may have opened
        # more of this chain; its statement could not see them, this one can.
        first += await _close_chain_rest(session, root=root, answered=answered, now=now, skip=first)
    return stopped + first


async def _stop_above(session: AsyncSession, *, answered: int, now: datetime) -> list[int]:
    """Step 3 for an escalation notice: the notices its silence set off (and theirs), as `_close_chain`
    treats a chain; returns them. The levels are few (grid → village → town → county)."""
    stopped: list[int] = []
    parents = [answered]
    while parents:
        is_open = N.c.state.in_(OPEN_STATES)
        res = await session.execute(
            update(N).where(in_ids(session, N.c.escalation_of, parents), N.c.state.in_(ANSWERABLE_STATES))
            .values(state=case((is_open, NoticeState.closed.value), else_=N.c.state),
                    closed_at=case((is_open, now), else_=N.c.closed_at),
                    next_action_at=null(), step=NoticeStep.done.value)
            .returning(N.c.id))
        parents = list(res.scalars())
        stopped += parents
    return stopped


async def _close_chain_rest(session: AsyncSession, *, root: int, answered: int, now: datetime,
                            skip: list[int]) -> list[int]:
    stmt = _close_chain(root, answered, literal(now, UTCDateTime))
    if skip:
        stmt = stmt.where(~in_ids(session, N.c.id, skip))
    return list((await session.execute(stmt)).scalars())


async def _already(session: AsyncSession, n: LoadedNotice, a: Answer, *, now: datetime) -> AckResult:
    """A second answer: told it succeeded, logged, nothing written."""
    row = (await session.execute(select(Acknowledgment).where(
        Acknowledgment.notice_id == n.id, Acknowledgment.round == n.round))).scalar_one_or_none()
    if row is None:
        return _duplicate(n, a, ack_id=None, path=None, acknowledged_at=n.acknowledged_at or now, late=False)
    return _duplicate(n, a, ack_id=row.id, path=row.path, acknowledged_at=row.acknowledged_at, late=bool(row.late))


def _duplicate(n: LoadedNotice, a: Answer, *, ack_id: int | None, path: str | None, acknowledged_at: datetime,
               late: bool) -> AckResult:
    log.info("ack_duplicate", notice_id=n.id, warning_id=n.warning_id, path=a.path, source=a.source,
             winner_path=path)
    return AckResult(notice_id=n.id, warning_id=n.warning_id, person_id=n.person_id, round=n.round,
                     status="already_acknowledged", acknowledged_at=acknowledged_at, late=late,
                     path=path or a.path, acknowledgment_id=ack_id, notice=n)


def _result(won: _Won, a: Answer, *, notice_id: int, now: datetime) -> AckResult:
    log.info("ack_recorded", notice_id=notice_id, warning_id=won.warning_id, path=a.path, late=won.late,
             round=won.round, chain_stopped=len(won.chain), cancelled=won.cancelled)
    return AckResult(notice_id=notice_id, warning_id=won.warning_id, person_id=won.person_id, round=won.round,
                     status="acknowledged", acknowledged_at=now, late=won.late, path=a.path,
                     acknowledgment_id=won.ack_id)

