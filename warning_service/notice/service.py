"""Every change of a notice's state outside an answer (see answer.py), written set-based.

Issuing opens primary notices; the escalation sweep moves them along their chain and opens deputy and
escalation notices; a receipt marks them delivered; an upgrade starts a new round; a lift or an expiry
closes them. Each function works in the caller's transaction and flushes, never commits. Chasing messages
that an answer or a closed chain makes pointless are cancelled here too, by one rule (`cancel_chase`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, func, literal, literal_column, null, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.db import UTCDateTime
from warning_service.delivery.models import OutboxMessage, OutboxStatus
from warning_service.dialect import chunks, in_ids, insert, is_postgresql
from warning_service.early_warning.models import EarlyWarning
from warning_service.notice.models import (
    ANSWERABLE_STATES,
    CHASE_KINDS,
    DUTY_WATCH_PREDICATE,
    OPEN_STATES,
    PRIMARY_PREDICATE,
    ROUND_REASONS,
    EscalationDigest,
    Notice,
    NoticeReason,
    NoticeState,
    NoticeStep,
)
from warning_service.person.models import Person
from warning_service.region.models import Region
from warning_service.region.scope import Scope

N = Notice.__table__
D = EscalationDigest.__table__
OUTBOX = OutboxMessage.__table__
PART = 1000
_SEQUENCES: dict[str, str] = {}  # database URL → the notice id sequence's name (fixed by the schema)
NOTICE_COLUMNS = ["warning_id", "person_id", "role", "region_code", "reason", "state", "requires_ack", "round",
                  "deadline", "next_action_at", "attempt_count", "step", "created_at"]


# --- opening -------------------------------------------------------------------------------------------------

def recipient_conditions(*, target_paths: Sequence[str], roles: Sequence[str]) -> list[Any]:
    """Who a warning reaches: active people with a reached role under the targets (Person joined to Region).

    The issue and its dry-run preview both select with exactly these conditions, so the preview's count is
    the issue's count.
    """
    return [Person.active.is_(True), Person.role.in_(list(roles)), Scope.any_of(Region.path, target_paths)]


async def open_primary(session: AsyncSession, *, warning: EarlyWarning, target_paths: Sequence[str],
                       roles: Sequence[str], now: datetime) -> tuple[int, int]:
    """One primary notice per active person with a reached role under the targets; returns (count, id_floor).

    Ids above `id_floor` are the notices this call opened. A person who already has a primary notice of
    this warning (an update widening the area) is skipped by the unique index, not by an anti-join against
    `notice`: with statistics taken while the table was empty, PostgreSQL plans such an anti-join as a
    nested loop that rescans the rows the same INSERT adds — quadratic on a fresh install.
    """
    policy = warning.policy
    ack = bool(policy["ack_required"])
    deadline = now + timedelta(seconds=float(policy["ack_deadline"])) if ack else None
    floor = (await session.execute(select(func.coalesce(func.max(Notice.id), 0)))).scalar_one()
    src = (
        select(
            literal(warning.id, Integer), Person.id, Person.role, Person.region_code,
            literal(NoticeReason.primary.value), literal(NoticeState.pending.value), literal(ack),
            literal(warning.ack_round, Integer), literal(deadline, UTCDateTime), literal(deadline, UTCDateTime),
            literal(0, Integer), literal(NoticeStep.initial.value), literal(now, UTCDateTime),
        )
        .select_from(Person)
        .join(Region, Region.code == Person.region_code)
        .where(*recipient_conditions(target_paths=target_paths, roles=roles))
    )
    # The arbiter is the partial unique index uq_notice_primary; its predicate must be spelled as a literal
    # for PostgreSQL to infer the index under a generic (prepared) plan.
    stmt = insert(session, N).from_select(NOTICE_COLUMNS, src).on_conflict_do_nothing(
        index_elements=["warning_id", "person_id"], index_where=text(PRIMARY_PREDICATE))
    result = await session.execute(stmt)
    return result.rowcount or 0, floor


async def open_one(session: AsyncSession, *, warning: EarlyWarning, person: Any, now: datetime) -> int:
    """One primary notice for one person, as `open_primary` would open it; returns its id. The issue
    form's preview renders a sample message from it inside a savepoint it then rolls back."""
    ack = bool(warning.policy["ack_required"])
    deadline = now + timedelta(seconds=float(warning.policy["ack_deadline"])) if ack else None
    values = dict(zip(NOTICE_COLUMNS, (
        warning.id, person.id, person.role, person.region_code, NoticeReason.primary.value,
        NoticeState.pending.value, ack, warning.ack_round, deadline, deadline, 0, NoticeStep.initial.value, now),
        strict=True))
    return (await session.execute(insert(session, N).values(**values).returning(N.c.id))).scalar_one()


def chain_notice_row(*, silent: Any, person_id: int, role: str, region_code: str, reason: NoticeReason,
                     deadline: datetime, now: datetime, digest_id: int | None = None) -> dict[str, Any]:
    """Values of a deputy or escalation notice opened because `silent` did not answer."""
    return {"digest_id": digest_id, "warning_id": silent.warning_id, "person_id": person_id, "role": role,
            "region_code": region_code,
            "reason": reason.value, "escalation_of": silent.id, "root_id": silent.root_id or silent.id,
            "state": NoticeState.pending.value, "requires_ack": True, "round": silent.round, "deadline": deadline,
            "next_action_at": deadline, "attempt_count": 0, "step": NoticeStep.initial.value, "created_at": now}


async def open_chain(session: AsyncSession, rows: list[dict[str, Any]]) -> list[Any]:
    """Insert deputy/escalation notices (`chain_notice_row`); returns (id, escalation_of) of each opened.

    One (silent notice, person) pair has one notice row across rounds, as primary notices do: after an
    upgrade the closed row of the earlier round is reopened for the new one. Within a round the conflict
    is a no-op, so nothing is opened twice.
    """
    if not rows:
        return []
    stmt = insert(session, N)
    ex = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=["escalation_of", "person_id"],
        set_={"state": ex.state, "round": ex.round, "reason": ex.reason, "role": ex.role,
              "region_code": ex.region_code, "root_id": ex.root_id, "requires_ack": ex.requires_ack,
              "deadline": ex.deadline, "next_action_at": ex.next_action_at, "attempt_count": ex.attempt_count,
              "step": ex.step, "digest_id": ex.digest_id, "delivered_at": null(), "acknowledged_at": null(),
              "closed_at": null()},
        where=N.c.round < ex.round,
    ).returning(N.c.id, N.c.escalation_of, N.c.digest_id)
    # executemany: SQLAlchemy batches the rows into multi-row INSERTs ("insertmanyvalues") from one cached
    # compilation, RETURNING included — as long as the ON CONFLICT clause has no bound parameters.
    return list((await session.execute(stmt, rows)).all())


async def reserved_ids(session: AsyncSession, *, floor: int, order_by: Any) -> Any:
    """SQL: a fresh notice id per selected row, so rows of another table can name their notice before it is
    written (evacuation tasks: one INSERT … SELECT links each household to its keeper's notice).

    PostgreSQL draws them from the table's own sequence, safe beside concurrent inserts. SQLite has one
    writer at a time, and this transaction already writes: ids above `floor` (the current maximum) are free.
    """
    if is_postgresql(session):
        # The sequence is named once, as a constant the planner resolves: pg_get_serial_sequence() per row
        # costs a catalog look-up for each of 20,000 households.
        key = str(session.bind.url) if session.bind is not None else ""
        seq = _SEQUENCES.get(key)
        if seq is None:
            seq = _SEQUENCES[key] = (await session.execute(select(func.pg_get_serial_sequence("notice", "id")))
                                     ).scalar_one()
        return literal_column(f"nextval('{seq}'::regclass)", Integer)
    return literal(floor, Integer) + func.row_number().over(order_by=order_by)


async def max_id(session: AsyncSession) -> int:
    """The highest notice id so far (0 for none)."""
    return int((await session.execute(select(func.coalesce(func.max(Notice.id), 0)))).scalar_one())


async def open_reserved(session: AsyncSession, *, warning: EarlyWarning, source: Any, reason: NoticeReason,
                        now: datetime) -> int:
    """Open notices with ids reserved by `reserved_ids`: `source` selects (id, person_id, role, region_code).

    They follow the warning's policy as primary notices do (answer deadline, the chase), so an 包户责任人
    or a helper is held to the same 叫应 rules. Returns how many were opened.
    """
    policy = warning.policy
    ack = bool(policy["ack_required"])
    deadline = now + timedelta(seconds=float(policy["ack_deadline"])) if ack else None
    sub = source.subquery()
    src = select(
        sub.c[0], literal(warning.id, Integer), sub.c[1], sub.c[2], sub.c[3], literal(reason.value),
        literal(NoticeState.pending.value), literal(ack), literal(warning.ack_round, Integer),
        literal(deadline, UTCDateTime), literal(deadline, UTCDateTime), literal(0, Integer),
        literal(NoticeStep.initial.value), literal(now, UTCDateTime))
    res = await session.execute(insert(session, N).from_select(["id", *NOTICE_COLUMNS], src))
    return res.rowcount or 0


async def open_keepers(session: AsyncSession, *, warning: EarlyWarning, reserved: Sequence[tuple[int, int]],
                       now: datetime) -> int:
    """The 转移 notices of 包户责任人, one per keeper of this warning (ix_notice_evacuation), with the ids
    `reserved` for them by `reserved_ids`: (notice id, person id) pairs. Same 叫应 rules and chase as a
    primary notice. Returns how many were opened."""
    if not reserved:
        return 0
    policy = warning.policy
    ack = bool(policy["ack_required"])
    deadline = now + timedelta(seconds=float(policy["ack_deadline"])) if ack else None
    people: dict[int, Any] = {}
    for part in chunks(sorted({pid for _, pid in reserved}), PART):
        people |= {r.id: r for r in (await session.execute(select(Person.id, Person.role, Person.region_code)
                                                           .where(in_ids(session, Person.id, part)))).all()}
    rows = [dict(zip(["id", *NOTICE_COLUMNS], (
        nid, warning.id, pid, people[pid].role, people[pid].region_code, NoticeReason.evacuation.value,
        NoticeState.pending.value, ack, warning.ack_round, deadline, deadline, 0, NoticeStep.initial.value, now),
        strict=True)) for nid, pid in reserved]
    await session.execute(insert(session, N), rows)
    return len(rows)


async def reopen_keepers(session: AsyncSession, *, warning: EarlyWarning, ids: Sequence[int], now: datetime) -> int:
    """These 转移 notices, if answered, timed out or closed: asked again on a fresh deadline, because a
    revision gave their keeper more households to move. One still open keeps its clock (its next message
    lists the added households). Returns how many reopened."""
    policy = warning.policy
    ack = bool(policy["ack_required"])
    deadline = now + timedelta(seconds=float(policy["ack_deadline"])) if ack else None
    total = 0
    for part in chunks(sorted(set(ids)), PART):
        res = await session.execute(update(N).where(
            in_ids(session, N.c.id, part), N.c.reason == NoticeReason.evacuation,
            N.c.state.not_in(OPEN_STATES)).values(
            state=NoticeState.pending.value, round=warning.ack_round, requires_ack=ack, deadline=deadline,
            next_action_at=deadline, attempt_count=0, step=NoticeStep.initial.value, acknowledged_at=None,
            closed_at=None))
        total += res.rowcount or 0
    return total


def duty_watch_row(*, silent: Any, person_id: int, role: str, region_code: str, deadline: datetime,
                   now: datetime) -> dict[str, Any]:
    """Values of a notice telling a duty room that `silent` missed its first deadline.

    It names the silent notice (`escalation_of`, so its text can say whom) but is a chain of its own
    (no `root_id`): the duty room confirming it has seen the silence must not end the silent chain.
    """
    return {"warning_id": silent.warning_id, "person_id": person_id, "role": role, "region_code": region_code,
            "reason": NoticeReason.duty_watch.value, "escalation_of": silent.id, "root_id": None,
            "state": NoticeState.pending.value, "requires_ack": True, "round": silent.round, "deadline": deadline,
            "next_action_at": deadline, "attempt_count": 0, "step": NoticeStep.initial.value, "created_at": now}


async def open_duty_watch(session: AsyncSession, rows: list[dict[str, Any]]) -> list[Any]:
    """Insert duty-room heads-ups (`duty_watch_row`): one per warning and person on duty, reopened only by a
    new round; returns (id, escalation_of) of each opened."""
    if not rows:
        return []
    stmt = insert(session, N)
    ex = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=["warning_id", "person_id"], index_where=text(DUTY_WATCH_PREDICATE),
        set_={"state": ex.state, "round": ex.round, "escalation_of": ex.escalation_of, "deadline": ex.deadline,
              "next_action_at": ex.next_action_at, "attempt_count": ex.attempt_count, "step": ex.step,
              "delivered_at": null(), "acknowledged_at": null(), "closed_at": null()},
        where=N.c.round < ex.round,
    ).returning(N.c.id, N.c.escalation_of)
    return list((await session.execute(stmt, rows)).all())


async def open_attendance(session: AsyncSession, *, warning_id: int, persons: Sequence[Any], deadline: datetime,
                          now: datetime) -> list[Any]:
    """到岗 demands: one notice per (person_id, role, region_code) given; returns (id, person_id) of each."""
    if not persons:
        return []
    rows = [{"warning_id": warning_id, "person_id": p.person_id, "role": p.role, "region_code": p.region_code,
             "reason": NoticeReason.attendance.value, "escalation_of": None, "root_id": None,
             "state": NoticeState.pending.value, "requires_ack": True, "round": 1, "deadline": deadline,
             "next_action_at": deadline, "attempt_count": 0, "step": NoticeStep.initial.value, "created_at": now}
            for p in persons]
    stmt = insert(session, N).returning(N.c.id, N.c.person_id)
    return list((await session.execute(stmt, rows)).all())


async def close_still_open(session: AsyncSession, ids: Sequence[int], *, now: datetime) -> list[int]:
    """Close those of these notices still waiting (a response ended); their chase is cancelled."""
    closed: list[int] = []
    for part in chunks(sorted(set(ids)), PART):
        res = await session.execute(update(N).where(in_ids(session, N.c.id, part), N.c.state.in_(OPEN_STATES))
                                    .values(state=NoticeState.closed.value, closed_at=now, next_action_at=None,
                                            step=NoticeStep.done.value).returning(N.c.id))
        closed += list(res.scalars())
    await cancel_chase(session, notice_ids=closed, now=now)
    return closed


async def taken_codes(session: AsyncSession, person_ids: Sequence[int]) -> dict[int, set[int]]:
    """person id → reply codes of their digests that still have a notice to answer."""
    out: dict[int, set[int]] = {}
    for part in chunks(sorted(set(person_ids)), PART):
        rows = (await session.execute(select(D.c.person_id, D.c.reply_code).where(
            in_ids(session, D.c.person_id, part),
            select(N.c.id).where(N.c.digest_id == D.c.id, N.c.state.in_(ANSWERABLE_STATES)).exists()))).all()
        for pid, code in rows:
            out.setdefault(pid, set()).add(code)
    return out


def open_digest_codes() -> Any:
    """SQL: reply codes of digests someone may still answer (a new warning must not take one)."""
    return select(D.c.reply_code).where(
        select(N.c.id).where(N.c.digest_id == D.c.id, N.c.state.in_(ANSWERABLE_STATES)).exists())


async def open_digests(session: AsyncSession, *, keys: Sequence[tuple[int, int, int]], now: datetime
                       ) -> dict[tuple[int, int, int], int]:
    """One digest per (warning, recipient, round) key; returns key → digest id.

    Each gets the smallest reply code (from 10) that none of the recipient's open digests and no active
    warning uses, so two escalation messages to one person never both say "回复 10".
    """
    if not keys:
        return {}
    active = set((await session.execute(select(EarlyWarning.reply_code).where(
        EarlyWarning.state == "active"))).scalars())
    taken = await taken_codes(session, [p for _, p, _ in keys])
    rows = []
    for wid, pid, rnd in sorted(set(keys)):
        used = active | taken.setdefault(pid, set())
        code = next(c for c in range(10, 1_000_000) if c not in used)
        used.add(code)
        taken[pid].add(code)
        rows.append({"warning_id": wid, "person_id": pid, "round": rnd, "reply_code": code, "created_at": now})
    stmt = insert(session, D).returning(D.c.id, D.c.warning_id, D.c.person_id, D.c.round)
    return {(r.warning_id, r.person_id, r.round): r.id for r in (await session.execute(stmt, rows)).all()}


# --- the sweep's steps -----------------------------------------------------------------------------------------

async def _set(session: AsyncSession, ids: Sequence[int], **values: Any) -> None:
    for part in chunks(sorted(ids), PART):
        await session.execute(update(N).where(in_ids(session, N.c.id, part)).values(**values))


async def stop_clock(session: AsyncSession, ids: Sequence[int]) -> None:
    """Nothing more to do for these notices (warning over, no answer required); their state stays."""
    await _set(session, ids, next_action_at=None)


async def recall(session: AsyncSession, ids: Sequence[int], *, next_at: datetime) -> None:
    """One more call was queued for each; look again at `next_at`."""
    await _set(session, ids, attempt_count=N.c.attempt_count + 1, step=NoticeStep.recall.value,
               next_action_at=next_at)


async def await_deputy(session: AsyncSession, ids: Sequence[int], *, until: datetime) -> None:
    """Their deputy (B post) was called; the chain waits for either to answer until `until`."""
    await _set(session, ids, step=NoticeStep.deputy.value, next_action_at=until)


async def escalated(session: AsyncSession, ids: Sequence[int]) -> None:
    """The level above was told; their escalation notices carry the chain on."""
    await _set(session, ids, step=NoticeStep.escalated.value, next_action_at=None)


async def covered(session: AsyncSession, ids: Sequence[int]) -> None:
    """Someone else in the chain answered: stop chasing, but keep the state (the person never answered)."""
    await _set(session, ids, step=NoticeStep.done.value, next_action_at=None)


async def close(session: AsyncSession, ids: Sequence[int], *, now: datetime) -> int:
    """Deputy/escalation notices of a chain already answered: closed, and their chase cancelled."""
    await _set(session, ids, state=NoticeState.closed.value, closed_at=now, next_action_at=None,
               step=NoticeStep.done.value)
    return await cancel_chase(session, notice_ids=ids, now=now)


async def defer(session: AsyncSession, ids: Sequence[int], *, until: datetime) -> None:
    """Look again at `until` (another transaction holds what this step needs)."""
    await _set(session, ids, next_action_at=until)


async def time_out(session: AsyncSession, ids: Sequence[int]) -> None:
    """Chain ends and exhausted deputies: 超时未叫应."""
    await _set(session, ids, state=NoticeState.timed_out.value, next_action_at=None, step=NoticeStep.done.value)


async def time_out_roots(session: AsyncSession, ids: Sequence[int], *, round_: int) -> None:
    """Mark the primary notices of chains that reached the top 超时未叫应, if still open in that round."""
    for part in chunks(sorted(ids), PART):
        await session.execute(update(N).where(in_ids(session, N.c.id, part), N.c.round == round_,
                                              N.c.state.in_(OPEN_STATES))
                              .values(state=NoticeState.timed_out.value, next_action_at=None))


# --- receipts, rounds, lift and expiry ---------------------------------------------------------------------------

async def mark_delivered(session: AsyncSession, ids: Sequence[int], *, now: datetime) -> None:
    """A carrier confirmed a message reached them: pending → delivered (later states are left alone)."""
    for part in chunks(sorted(set(ids)), PART):
        await session.execute(update(N).where(in_ids(session, N.c.id, part), N.c.state == NoticeState.pending)
                              .values(state=NoticeState.delivered.value, delivered_at=now))


def mark_delivered_sql(*, now: str, ids: str) -> str:
    """`mark_delivered` as PostgreSQL text, for a statement that records a whole batch on the raw pool
    (delivery/bulk.py): `now` and `ids` (an int[]) are its parameters' placeholders."""
    return (f"UPDATE notice SET state = '{NoticeState.delivered.value}', delivered_at = {now} "
            f"WHERE id = ANY({ids}) AND state = '{NoticeState.pending.value}'")


async def restart_round(session: AsyncSession, *, warning: EarlyWarning, now: datetime) -> None:
    """An upgrade: every primary notice still covered must be answered again, on the new policy's clock.

    The chains started for the lesser level end and their chase is cancelled; the new round starts its own.
    """
    snap = warning.policy
    ack = bool(snap["ack_required"])
    deadline = now + timedelta(seconds=float(snap["ack_deadline"])) if ack else None
    await session.execute(update(N).where(
        N.c.warning_id == warning.id, N.c.reason == NoticeReason.primary, N.c.state != NoticeState.closed).values(
        state=NoticeState.pending.value, round=warning.ack_round, requires_ack=ack, deadline=deadline,
        next_action_at=deadline, attempt_count=0, step=NoticeStep.initial.value, acknowledged_at=None))
    await close_open(session, warning_id=warning.id, now=now, chains_only=True)
    await session.execute(update(OUTBOX).where(
        OUTBOX.c.warning_id == warning.id, OUTBOX.c.status == OutboxStatus.queued,
        OUTBOX.c.kind.in_([k for k in CHASE_KINDS if k != NoticeReason.attendance]))
        .values(status=OutboxStatus.cancelled.value, error_code="superseded",
                                                 updated_at=now))


async def renew_deadlines(session: AsyncSession, *, warning: EarlyWarning, now: datetime) -> None:
    """An update that is not an upgrade gives those yet to answer a deadline counted from the update.

    People who already answered keep their answer and hear the update as information. Those still at the
    first step have their first chase moved to the new deadline; a chase already under way keeps its pace.
    """
    snap = warning.policy
    if not snap.get("ack_required"):
        return
    deadline = now + timedelta(seconds=float(snap["ack_deadline"]))
    still_open = (N.c.warning_id == warning.id, N.c.reason == NoticeReason.primary, N.c.state.in_(OPEN_STATES),
                  N.c.requires_ack.is_(True))
    await session.execute(update(N).where(*still_open, N.c.step == NoticeStep.initial).values(
        deadline=deadline, next_action_at=deadline))
    await session.execute(update(N).where(*still_open, N.c.step != NoticeStep.initial).values(deadline=deadline))


async def close_open(session: AsyncSession, *, warning_id: int, now: datetime, chains_only: bool = False,
                     outside_paths: Sequence[str] | None = None) -> int:
    """Close the warning's notices still waiting for an answer; returns how many.

    `chains_only` closes deputy/escalation notices only (a new round); `outside_paths` closes primary
    notices of people no longer inside those subtrees (an update that narrows the area).
    """
    stmt = update(N).where(N.c.warning_id == warning_id, N.c.state.in_(OPEN_STATES))
    if chains_only:
        stmt = stmt.where(N.c.reason.in_(ROUND_REASONS))
    if outside_paths is not None:
        inside = select(Region.code).where(Scope.any_of(Region.path, outside_paths))
        stmt = stmt.where(N.c.reason == NoticeReason.primary, N.c.region_code.not_in(inside))
    res = await session.execute(stmt.values(state=NoticeState.closed.value, next_action_at=None, closed_at=now,
                                            step=NoticeStep.done.value))
    return res.rowcount or 0


async def end_warning(session: AsyncSession, *, warning_id: int, now: datetime) -> int:
    """A lift or an expiry: close every open notice and stop every clock; returns how many were closed."""
    closed = await close_open(session, warning_id=warning_id, now=now)
    await session.execute(update(N).where(N.c.warning_id == warning_id, N.c.next_action_at.is_not(None))
                          .values(next_action_at=None))
    return closed


async def close_if_open(session: AsyncSession, ids: Sequence[int], *, now: datetime) -> int:
    """Close those of these notices still waiting for an answer, and cancel their chase (what they asked for
    is over — evacuees released); answered and timed-out notices keep their state. Returns how many closed."""
    total = 0
    for part in chunks(sorted(set(ids)), PART):
        res = await session.execute(update(N).where(in_ids(session, N.c.id, part), N.c.state.in_(OPEN_STATES))
                                    .values(state=NoticeState.closed.value, closed_at=now, next_action_at=None,
                                            step=NoticeStep.done.value))
        total += res.rowcount or 0
    await cancel_chase(session, notice_ids=ids, now=now)
    return total


# --- the chase ---------------------------------------------------------------------------------------------------

def chase_of(among: Callable[[Any], Any]) -> Any:
    """The still-queued chasing messages (re-calls, deputy calls, escalations) of the notices `among`
    selects (a predicate over a notice id column), a SQL expression over outbox rows.

    coalesce() keeps the planner on the notice_id index: `status = 'queued'` would match the dispatcher's
    partial queue index, and right after a province-wide issue (statistics not yet refreshed) PostgreSQL
    estimates a handful of queued rows and scans all 150,000 of them for every answer.
    A digest's message lists several silent people: it is cancelled only when none of its notices outside
    `among` is still to be answered (else it still has someone to tell about).
    """
    m = N.alias("member")
    others_open = select(m.c.id).where(m.c.digest_id == OUTBOX.c.digest_id, m.c.state.in_(ANSWERABLE_STATES),
                                       ~among(m.c.id)).exists()
    return (among(OUTBOX.c.notice_id), func.coalesce(OUTBOX.c.status, "") == OutboxStatus.queued.value,
            OUTBOX.c.kind.in_(CHASE_KINDS), or_(OUTBOX.c.digest_id.is_(None), ~others_open))


CANCELLED_BY_ANSWER = {"status": OutboxStatus.cancelled.value, "error_code": "acknowledged"}


async def cancel_chase(session: AsyncSession, *, notice_ids: Sequence[int], now: datetime) -> int:
    """Cancel the still-queued re-calls, deputy calls and escalations of these notices."""
    total = 0
    for part in chunks(sorted(set(notice_ids)), PART):
        res = await session.execute(update(OUTBOX).where(*chase_of(lambda col, ids=part: in_ids(session, col, ids)))
                                    .values(**CANCELLED_BY_ANSWER, updated_at=now))
        total += res.rowcount or 0
    return total

