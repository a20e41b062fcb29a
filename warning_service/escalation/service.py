"""The escalation sweep (叫应必答): re-call whoever is silent, then their deputy, then the level above.

The database remembers; APScheduler only ticks. Each notice carries its own clock (`next_action_at`) and
place in the chain (`attempt_count`, `step`), so a sweep claims whatever is due, decides for the whole batch
from the warning's policy snapshot, and writes the next messages and the advanced notices in one
transaction. A crash before commit leaves the batch due for the next sweep; after commit nothing is redone.

Per silent notice, once its deadline passes:
1. re-call it (`recall_channel`) every `recall_interval` until `recall_count` calls are made;
2. then, once, its person's active deputy (B post) gets a notice of their own, and this one waits
   `ack_deadline` for either to answer (a deputy's answer ends the chain there);
3. then the nearest region above (not beyond `escalate_until`) with active responsible persons: each gets
   an escalation notice, which runs these same rules; this one stops. A recipient's escalation notices
   opened in one sweep share a digest: one message (and one re-call) lists everyone newly silent below them.
   An answer to an escalation says the level above was informed: it ends that notice (and whatever its own
   silence set off above), never the silent person's chase, which runs on until they answer or someone
   records a proxy answer with its method;
4. with nobody above, the duty room on shift for the region where the chain stopped (duty/, the nearest
   one at or above it) gets a `duty_room` notice each for its 带班领导 and 值班员, chased by the same rules;
   the room is looked up when the chain runs out, so after a shift change the new shift gets it;
5. with no duty room on shift either (or once it too stays silent), this notice and the primary notice it
   started from are timed out (超时未叫应).
In parallel, when a primary notice misses its first deadline, the nearest duty room on shift at town level
or above is told once per warning (`duty_watch`, policy `duty_watch`), so a silence is seen by someone who
can act while the re-calls go on. A 到岗 demand of an emergency response (`attendance`) is re-called on its
response's own clock and then times out; it climbs no chain.
A deputy notice only runs step 1 and then times out: the chain it belongs to is carried by the notice that
called it, so the level above hears about the silent A post once, not twice.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.early_warning.models import WarningState
from warning_service.early_warning.service import expire_due
from warning_service.escalation import actions, targets
from warning_service.ledger import service as ledger
from warning_service.logging import get_logger
from warning_service.notice import service as notices
from warning_service.notice.claim import claim, lock_roots, lock_warnings
from warning_service.notice.models import OPEN_STATES, ROOT_REASONS, NoticeReason, NoticeStep
from warning_service.runtime import Runtime

log = get_logger(__name__)
ACTOR = "system:escalation"
# A chain end whose primary notice another transaction holds (an answer arriving) is looked at again soon.
RETRY_LOCKED = timedelta(seconds=2)
MAX_BATCHES_PER_TICK = 50
EXPIRE_BATCH = 100


@dataclass
class SweepResult:
    claimed: int = 0
    recalls: int = 0
    deputies: int = 0     # silent notices whose deputy was called
    escalated: int = 0    # silent notices reported to the level above
    timed_out: int = 0    # chain ends (and exhausted deputies) marked 超时未叫应
    covered: int = 0      # primary notices whose chain someone else answered (deputy, level above)
    closed: int = 0       # deputy/escalation notices of a chain already answered
    stopped: int = 0      # nothing left to do (answered, closed, warning over); clock cleared
    busy: int = 0         # warning being lifted/changed right now: left due for the next sweep
    deferred: int = 0
    duty_room: int = 0    # chains that ran out handed to the duty room on shift
    duty_watch: int = 0   # duty-room heads-ups opened at a first missed deadline
    messages: int = 0
    opened: dict[int, list[int]] = field(default_factory=dict)  # silent notice id → notices opened for it

    @property
    def advanced(self) -> int:
        return self.claimed - self.busy


@dataclass
class _Plan:
    stop: list[int] = field(default_factory=list)
    recall: dict[tuple[str, float], list[Any]] = field(default_factory=lambda: defaultdict(list))
    deputy: list[tuple[Any, int]] = field(default_factory=list)
    escalate: list[tuple[Any, targets.Level]] = field(default_factory=list)
    covered: list[Any] = field(default_factory=list)
    closed: list[Any] = field(default_factory=list)
    exhausted: list[Any] = field(default_factory=list)  # deputy notices whose calls are used up
    top: list[Any] = field(default_factory=list)
    duty: list[tuple[Any, int, list[targets.Responsible]]] = field(default_factory=list)  # (silent, shift, on duty)
    watch: list[tuple[Any, int, targets.Responsible]] = field(default_factory=list)  # (first silent, shift, person)


async def sweep(session: AsyncSession, *, now: datetime, batch_size: int) -> SweepResult:
    """Claim up to `batch_size` due notices and take each one step along its chain; flushes, never commits."""
    rows = await claim(session, now=now, batch_size=batch_size)
    res = SweepResult(claimed=len(rows))
    if not rows:
        return res
    warnings = await lock_warnings(session, (r.warning_id for r in rows))
    plan = _Plan()
    live: list[Any] = []
    for r in rows:
        w = warnings.get(r.warning_id)
        if w is None:
            res.busy += 1
        elif w.state != WarningState.active or r.state not in OPEN_STATES or not r.requires_ack:
            plan.stop.append(r.id)
        else:
            live.append(r)
    # The silent person's (or their deputy's) answer ends a chain; an informed level above ends what its
    # own silence set off. The answer's transaction closes those itself; this catches whatever it could not
    # see (a notice this sweep's predecessor opened while the answer waited).
    answered = await targets.answered_chains(session, {r.root_id or r.id for r in live})
    # A 到岗 demand is chased on its response's clock, not its warning's.
    demands = await targets.response_policies(session, [r.id for r in live if r.reason == NoticeReason.attendance])
    informed = await targets.informed(session, {r.escalation_of for r in live if r.escalation_of})
    exhausted: list[Any] = []
    first_miss: list[Any] = []
    for r in live:
        policy = demands.get(r.id) or warnings[r.warning_id].policy
        if (r.root_id or r.id, r.round) in answered and r.reason in ROOT_REASONS:
            plan.covered.append(r)
            continue
        if (r.root_id or r.id, r.round) in answered or r.escalation_of in informed:
            plan.closed.append(r)
            continue
        if r.reason == NoticeReason.duty_watch:
            exhausted.append(r)  # a heads-up is not re-called: unconfirmed by its deadline, it times out
        elif policy.get("recall_channel") and r.attempt_count < int(policy.get("recall_count") or 0):
            plan.recall[(policy["recall_channel"], float(policy["recall_interval"]))].append(r)
        else:
            exhausted.append(r)
        if (r.reason == NoticeReason.primary and r.attempt_count == 0 and r.step == NoticeStep.initial
                and policy.get("duty_watch")):
            first_miss.append(r)
    if exhausted:
        await _plan_next(session, plan, exhausted, warnings, now=now)
    if first_miss:
        await _plan_watch(session, plan, first_miss, now=now)
    await _write(session, plan, res, warnings, now=now)
    await ledger.append_many(session, _ledger(plan, res, now=now))
    log.info("escalation_sweep", claimed=res.claimed, recalls=res.recalls, deputies=res.deputies,
             escalated=res.escalated, duty_room=res.duty_room, duty_watch=res.duty_watch,
             timed_out=res.timed_out, covered=res.covered, closed=res.closed,
             stopped=res.stopped, busy=res.busy, deferred=res.deferred, messages=res.messages)
    return res


async def _plan_next(session: AsyncSession, plan: _Plan, rows: list[Any], warnings: dict[int, Any], *,
                     now: datetime) -> None:
    """Decide for notices whose re-calls are used up: deputy, level above, duty room, or the end of the chain."""
    chained: list[Any] = []
    for r in rows:
        if r.reason in (NoticeReason.duty_watch, NoticeReason.attendance):
            plan.exhausted.append(r)  # they carry no chain: timed out alone
        elif r.reason == NoticeReason.duty_room:
            plan.top.append(r)  # the duty room was the last step
        else:
            chained.append(r)
    rows = chained
    called = await targets.deputy_notices(session, [r.id for r in rows if r.reason != NoticeReason.deputy])
    may_call = {r.id for r in rows if r.reason != NoticeReason.deputy and (r.id, r.round) not in called
                and warnings[r.warning_id].policy.get("call_deputy")}
    deputy_of = await targets.deputies(session, [r.person_id for r in rows if r.id in may_call])
    upward: list[Any] = []
    for r in rows:
        if r.reason == NoticeReason.deputy:
            plan.exhausted.append(r)
        elif (r.id, r.round) in called:
            upward.append(r)  # the deputy had their chance, unanswered: on to the level above
        elif r.id in may_call and r.person_id in deputy_of:
            plan.deputy.append((r, deputy_of[r.person_id]))
        else:
            upward.append(r)
    policies = {r.id: warnings[r.warning_id].policy for r in upward}
    regions = {r.region_code for r in upward if policies[r.id].get("escalate")}
    chains = await targets.chains_above(session, regions)
    ran_out: list[Any] = []
    for r in upward:
        p = policies[r.id]
        level = (targets.next_level_up(chains.get(r.region_code, []), until=p.get("escalate_until", "county"),
                                       exclude_person=r.person_id) if p.get("escalate") else None)
        if level is None:
            ran_out.append(r)
        else:
            plan.escalate.append((r, level))
    rooms = await targets.duty_room(session, {r.region_code for r in ran_out if policies[r.id].get("duty_room")},
                                    at=now)
    for r in ran_out:
        room = rooms.get(r.region_code) if policies[r.id].get("duty_room") else None
        on_duty = targets.on_duty_except(room, r.person_id) if room is not None else []
        if room is not None and on_duty:
            plan.duty.append((r, room.shift_id, on_duty))
        else:
            plan.top.append(r)


async def _plan_watch(session: AsyncSession, plan: _Plan, rows: list[Any], *, now: datetime) -> None:
    """The nearest duty room on shift (town or above) of each first silence; once per warning and person."""
    rooms = await targets.duty_room(session, {r.region_code for r in rows}, at=now, lowest="town")
    seen: set[tuple[int, int]] = set()
    for r in rows:
        room = rooms.get(r.region_code)
        for p in targets.on_duty_except(room, r.person_id) if room is not None else []:
            if (r.warning_id, p.person_id) not in seen:
                seen.add((r.warning_id, p.person_id))
                plan.watch.append((r, room.shift_id, p))  # type: ignore[union-attr]


def _deadline(policy: dict[str, Any], now: datetime) -> datetime:
    return now + timedelta(seconds=float(policy["ack_deadline"]))


async def _write(session: AsyncSession, plan: _Plan, res: SweepResult, warnings: dict[int, Any], *,
                 now: datetime) -> None:
    if plan.stop:
        await notices.stop_clock(session, plan.stop)
        res.stopped = len(plan.stop)
    for (channel, interval), rs in plan.recall.items():
        ids = [r.id for r in rs]
        await notices.recall(session, ids, next_at=now + timedelta(seconds=interval))
        res.messages += await actions.queue_messages(session, notice_ids=actions.representatives(rs),
                                                     channel=channel, recall=True, now=now)
        res.recalls += len(ids)
    new_rows = []
    for r, deputy_id in plan.deputy:
        deadline = _deadline(warnings[r.warning_id].policy, now)
        new_rows.append(notices.chain_notice_row(
            silent=r, person_id=deputy_id, role=r.role, region_code=r.region_code, reason=NoticeReason.deputy,
            deadline=deadline, now=now))
    digests = await notices.open_digests(session, keys=[
        (r.warning_id, p.person_id, r.round) for r, level in plan.escalate for p in level.persons], now=now)
    for r, level in plan.escalate:
        deadline = _deadline(warnings[r.warning_id].policy, now)
        new_rows += [notices.chain_notice_row(
            silent=r, person_id=p.person_id, role=p.role, region_code=p.region_code,
            reason=NoticeReason.escalation, deadline=deadline, now=now,
            digest_id=digests[(r.warning_id, p.person_id, r.round)]) for p in level.persons]
    for r, _, on_duty in plan.duty:
        deadline = _deadline(warnings[r.warning_id].policy, now)
        new_rows += [notices.chain_notice_row(
            silent=r, person_id=p.person_id, role=p.role, region_code=p.region_code,
            reason=NoticeReason.duty_room, deadline=deadline, now=now) for p in on_duty]
    if new_rows:
        opened = await notices.open_chain(session, new_rows)
        for o in opened:
            res.opened.setdefault(o.escalation_of, []).append(o.id)
        res.messages += await actions.queue_messages(
            session, notice_ids=actions.representatives(opened), channel="sms", recall=False, now=now)
    by_wait: dict[datetime, list[int]] = defaultdict(list)
    for r, _ in plan.deputy:
        by_wait[_deadline(warnings[r.warning_id].policy, now)].append(r.id)
    for wait, ids in by_wait.items():
        await notices.await_deputy(session, ids, until=wait)
    res.deputies = len(plan.deputy)
    if plan.escalate or plan.duty:
        ids = [r.id for r, _ in plan.escalate] + [r.id for r, _, _ in plan.duty]
        await notices.escalated(session, ids)
        res.escalated = len(plan.escalate)
        res.duty_room = len(plan.duty)
    if plan.watch:
        watch = await notices.open_duty_watch(session, [notices.duty_watch_row(
            silent=r, person_id=p.person_id, role=p.role, region_code=p.region_code,
            deadline=_deadline(warnings[r.warning_id].policy, now), now=now) for r, _, p in plan.watch])
        for o in watch:
            res.opened.setdefault(o.escalation_of, []).append(o.id)
        res.messages += await actions.queue_messages(session, notice_ids=[o.id for o in watch], channel="sms",
                                                     recall=False, now=now)
        res.duty_watch = len(watch)
    if plan.covered:
        await notices.covered(session, [r.id for r in plan.covered])
        res.covered = len(plan.covered)
    if plan.closed:
        ids = [r.id for r in plan.closed]
        await notices.close(session, ids, now=now)
        res.closed = len(plan.closed)
    await _time_out(session, plan, res, now=now)


async def _time_out(session: AsyncSession, plan: _Plan, res: SweepResult, *, now: datetime) -> None:
    """Chain ends: the notice and, for the whole chain, its primary notice become 超时未叫应."""
    roots = {r.id: (r.root_id or r.id) for r in plan.top}
    held = await lock_roots(session, [root for nid, root in roots.items() if root != nid])
    ready = [r for r in plan.top if roots[r.id] == r.id or roots[r.id] in held]
    ready_ids = {r.id for r in ready}
    waiting = [r.id for r in plan.top if r.id not in ready_ids]
    if waiting:
        await notices.defer(session, waiting, until=now + RETRY_LOCKED)
        res.deferred = len(waiting)
    plan.top = ready
    ends = [r.id for r in ready] + [r.id for r in plan.exhausted]
    if ends:
        await notices.time_out(session, ends)
    by_round: dict[int, set[int]] = defaultdict(set)
    for r in ready:
        if roots[r.id] != r.id:
            by_round[r.round].add(roots[r.id])
    for rnd, ids in by_round.items():
        await notices.time_out_roots(session, sorted(ids), round_=rnd)
    res.timed_out = len(ends)


def _ledger(plan: _Plan, res: SweepResult, *, now: datetime) -> list[dict[str, Any]]:
    """One entry per warning and kind of action in this batch, with the notice ids (not one per notice)."""
    entries: dict[tuple[str, int], dict[str, Any]] = {}

    def add(action: str, r: Any) -> dict[str, Any]:
        e = entries.setdefault((action, r.warning_id), {"count": 0, "notice_ids": []})
        e["count"] += 1
        e["notice_ids"].append(r.id)
        return e

    for (channel, _), rs in plan.recall.items():
        for r in rs:
            by_channel = add("escalation.recalls", r).setdefault("by_channel", {})
            by_channel[channel] = by_channel.get(channel, 0) + 1
    for r, deputy_id in plan.deputy:
        add("escalation.deputies", r).setdefault("called", {})[str(r.id)] = {
            "person_id": deputy_id, "notice_ids": res.opened.get(r.id, [])}
    for r, level in plan.escalate:
        add("escalation.escalated", r).setdefault("told", {})[str(r.id)] = {
            "region": level.code, "person_ids": [p.person_id for p in level.persons],
            "notice_ids": res.opened.get(r.id, [])}
    for r, shift_id, on_duty in plan.duty:
        add("escalation.duty_room", r).setdefault("told", {})[str(r.id)] = {
            "shift_id": shift_id, "region": on_duty[0].region_code, "person_ids": [p.person_id for p in on_duty],
            "notice_ids": res.opened.get(r.id, [])}
    for r, shift_id, p in plan.watch:
        told = add("escalation.duty_watch", r).setdefault("told", {})
        told.setdefault(str(shift_id), {"region": p.region_code, "person_ids": [], "first_silent": r.id})
        told[str(shift_id)]["person_ids"].append(p.person_id)
    for r in plan.top:
        add("escalation.timed_out", r).setdefault("root_ids", {})[str(r.id)] = r.root_id or r.id
    for r in plan.exhausted:
        add("escalation.timed_out", r).setdefault("deputy_notice_ids", []).append(r.id)
    for r in plan.covered + plan.closed:
        add("escalation.answered_in_chain", r)
    return [{"at": now, "actor": ACTOR, "action": action, "subject_type": "warning", "subject_id": wid,
             "details": details} for (action, wid), details in sorted(entries.items())]


async def escalation_tick(rt: Runtime) -> int:
    """Worker job: end expired warnings, then sweep batch after batch until nothing due is left.

    Returns how many notices were taken a step further. One `now` for the whole tick: a notice acted on
    is due again only later, so the loop ends; whatever falls due meanwhile is the next tick's.
    """
    now = rt.clock.now()
    while True:
        async with rt.db.session() as s:
            if len(await expire_due(s, now=now, limit=EXPIRE_BATCH)) < EXPIRE_BATCH:
                break
    batch = rt.settings.escalation_batch_size
    total = 0
    for _ in range(MAX_BATCHES_PER_TICK):
        async with rt.db.session() as s:
            res = await sweep(s, now=now, batch_size=batch)
        total += res.advanced
        # Drained, or all that is left is held by a lift in progress, or the worker is stopping.
        if res.claimed < batch or res.advanced == 0 or rt.stopping.is_set():
            break
    return total
