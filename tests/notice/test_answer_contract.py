"""The acknowledgment rule's two forms agree: every scenario, answered once through the one-statement form
(PostgreSQL's hot path) and once through the portable form, leaves the same notice, acknowledgment, outbox
and ledger rows, field by field.

Each scenario runs twice in the same database, on two warnings issued at the same relative times; rows are
compared with ids replaced by (reason, person) and times by their offset from the warning's issue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.escalation.conftest import issue, lift, run_sweeps
from tests.factories import build_tree, make_user
from warning_service.acknowledgment.models import Acknowledgment
from warning_service.auth.models import User
from warning_service.delivery.models import OutboxMessage
from warning_service.ledger.models import LedgerPending
from warning_service.notice import answer
from warning_service.notice.answer import NotAcknowledgeable
from warning_service.notice.models import Notice
from warning_service.notice.service import cancel_chase

pytestmark = pytest.mark.postgres_only
GRID = "33108100100101"
MIN = timedelta(minutes=1)
FORMS = ("one_statement", "portable")


@pytest.fixture
async def world(db, clock):
    if db.is_sqlite:
        pytest.skip("the one-statement form is PostgreSQL's; SQLite runs the portable form only")
    tree = await build_tree(db, now=clock.now())
    await make_user(db, username="contract_duty", role="duty_officer", region="331081", now=clock.now())
    async with db.session() as s:
        user_id = (await s.execute(select(User.id).where(User.username == "contract_duty"))).scalar_one()
    return tree, user_id


@dataclass
class Case:
    path: str
    raw_input: str | None = None
    source: str | None = None
    proxy: bool = False


async def run_form(form: str, db, *, notice_id: int, now: datetime, case: Case, user_id: int) -> answer.AckResult:
    """Answer through one form. The one-statement form is taken alone on the raw pool for a person's own
    answer (the link's hot path) and inside a session for a proxy, as the routes take it."""
    kw: dict[str, Any] = {"raw_input": case.raw_input, "source": case.source}
    if case.proxy:
        kw.update(actor_user_id=user_id, proxy_method="phone", note="电话联系本人确认", actor="user:contract_duty")
    if form == "one_statement" and not case.proxy:
        return await answer.answer(db, notice_id=notice_id, path=case.path, now=now, **kw)
    async with db.session() as s:
        return await answer.acknowledge(s, notice_id=notice_id, path=case.path, now=now,
                                        one_statement_first=form == "one_statement", **kw)


async def snapshot(db, warning_id: int, t0: datetime) -> dict[str, Any]:
    """The warning's rows with ids and times made comparable across warnings."""
    async with db.session() as s:
        notices = list((await s.execute(select(Notice).where(Notice.warning_id == warning_id))).scalars())
        key = {n.id: (n.reason, n.person_id) for n in notices}
        ids = set(key)

        def rel(t: datetime | None) -> float | None:
            return None if t is None else (t - t0).total_seconds()

        def mapped(v: Any) -> Any:
            if isinstance(v, list):
                return sorted(key.get(i, i) for i in v)
            return v

        acks = (await s.execute(select(Acknowledgment).where(Acknowledgment.warning_id == warning_id))).scalars()
        outbox = (await s.execute(select(OutboxMessage).where(OutboxMessage.warning_id == warning_id))).scalars()
        ledger = (await s.execute(select(LedgerPending).where(LedgerPending.action == "ack.recorded")
                                  .order_by(LedgerPending.id))).scalars()
        return {
            "notices": sorted((key[n.id], n.state, n.step, n.round, n.attempt_count, rel(n.next_action_at),
                               rel(n.acknowledged_at), rel(n.closed_at), n.escalation_of and key[n.escalation_of])
                              for n in notices),
            "acks": sorted((key[a.notice_id], a.round, a.path, rel(a.acknowledged_at), a.late, a.raw_input, a.source,
                            a.proxy_method, a.note, a.actor_user_id is not None) for a in acks),
            "outbox": sorted((key.get(o.notice_id), o.kind, o.channel, o.status, o.error_code) for o in outbox),
            "ledger": [(e.actor.replace(str(e.details.get("person_id")), "P"), rel(e.at), {
                k: (key.get(v) if k == "notice_id" else None if k == "warning_id" else mapped(v))
                for k, v in e.details.items()}) for e in ledger if int(e.subject_id) in ids],
        }


Setup = Callable[[Any, Any, Any, int, datetime], Awaitable[int]]


async def both_forms(db, settings, clock, world, *, setup: Setup, case: Case, minutes_after: float = 0,
                     monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
    """Run the scenario through each form on a fresh warning; returns both snapshots and both outcomes."""
    tree, user_id = world
    portable_calls: list[int] = []
    real_portable = answer._portable

    async def counting(*a: Any, **kw: Any) -> Any:
        portable_calls.append(1)
        return await real_portable(*a, **kw)

    monkeypatch.setattr(answer, "_portable", counting)
    snaps, outcomes = [], []
    for form in FORMS:
        t0 = clock.now()
        wid = await issue(db, settings, clock, targets=[GRID])
        notice_id = await setup(db, clock, tree, wid, t0)
        clock.set(t0 + minutes_after * MIN)
        portable_calls.clear()
        try:
            result = await run_form(form, db, notice_id=notice_id, now=clock.now(), case=case, user_id=user_id)
            outcomes.append((result.status, result.late, result.round, result.path))
        except NotAcknowledgeable as exc:
            outcomes.append(("refused", exc.extra.get("reason")))
        outcomes.append((form, "portable used" if portable_calls else "one statement only"))
        snaps.append(await snapshot(db, wid, t0))
        clock.set(t0 + 24 * 60 * MIN)  # the next warning starts well after this one's chain
    return snaps[0], snaps[1], outcomes


async def primary_of(db, wid: int, person_id: int) -> int:
    async with db.session() as s:
        return (await s.execute(select(Notice.id).where(Notice.warning_id == wid, Notice.person_id == person_id,
                                                        Notice.reason == "primary"))).scalar_one()


async def fresh(db, clock, tree, wid, t0) -> int:
    return await primary_of(db, wid, tree.person(GRID, "grid_responsible"))


async def escalated(db, clock, tree, wid, t0) -> int:
    """Silent long enough for re-calls and an escalation notice with its queued SMS."""
    for minute in (3, 6, 9, 12):
        clock.set(t0 + minute * MIN)
        await run_sweeps(db, clock.now())
    return await fresh(db, clock, tree, wid, t0)


async def escalation(db, clock, tree, wid, t0) -> int:
    """The village head's escalation notice about the silent grid (the one to answer)."""
    root = await escalated(db, clock, tree, wid, t0)
    async with db.session() as s:
        return (await s.execute(select(Notice.id).where(Notice.escalation_of == root))).scalar_one()


async def timed_out(db, clock, tree, wid, t0) -> int:
    for minute in range(3, 61, 3):
        clock.set(t0 + minute * MIN)
        await run_sweeps(db, clock.now())
    return await fresh(db, clock, tree, wid, t0)


async def lifted(db, clock, tree, wid, t0) -> int:
    await lift(db, clock, wid)
    return await fresh(db, clock, tree, wid, t0)


async def answered_once(db, clock, tree, wid, t0) -> int:
    nid = await fresh(db, clock, tree, wid, t0)
    await answer.answer(db, notice_id=nid, path="link", now=clock.now(), source="198.51.100.1")
    return nid


LINK = Case(path="link", source="203.0.113.7")
SCENARIOS = {
    "link": (fresh, LINK, 1),
    "sms_reply": (fresh, Case(path="sms_reply", raw_input="1", source="+8613900000003"), 1),
    "voice_key": (fresh, Case(path="voice_key", raw_input="1", source="+8613900000003"), 1),
    "proxy": (fresh, Case(path="proxy", source="198.51.100.9", proxy=True), 1),
    "late": (fresh, LINK, 5),
    "chain_stopped": (escalated, LINK, 13),
    "proxy_stops_chain": (escalated, Case(path="proxy", source="198.51.100.9", proxy=True), 13),
    "timed_out_then_answered": (timed_out, LINK, 61),
    "escalation_informed": (escalation, LINK, 13),
    "lifted": (lifted, LINK, 1),
    "second_answer": (answered_once, Case(path="sms_reply", raw_input="收到", source="+8613900000003"), 2),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_both_forms_leave_the_same_rows(name, db, settings, clock, world, monkeypatch):
    setup, case, minutes = SCENARIOS[name]
    one, portable, outcomes = await both_forms(db, settings, clock, world, setup=setup, case=case,
                                               minutes_after=minutes, monkeypatch=monkeypatch)
    assert one == portable
    assert outcomes[0] == outcomes[2], outcomes  # same answer given to the caller
    if name in ("link", "sms_reply", "voice_key", "proxy", "late", "chain_stopped", "proxy_stops_chain",
                "timed_out_then_answered"):
        # The one-statement form really did the work: no fallback to the portable one.
        assert outcomes[1] == ("one_statement", "one statement only"), outcomes
        assert len(one["acks"]) == 1 and one["ledger"], one
    if name == "second_answer":
        # Told from one read on the raw pool, as the portable form tells it: no session.
        assert outcomes[0][0] == "already_acknowledged" and outcomes[0][3] == "link", outcomes
        assert outcomes[1] == ("one_statement", "one statement only"), outcomes
    if name in ("chain_stopped", "proxy_stops_chain"):
        assert any(o[3] == "cancelled" for o in one["outbox"]) and "chain_stopped" in one["ledger"][-1][2]
    if name == "escalation_informed":
        # The level above was informed; the silent grid person still owes the answer and is still chased.
        assert outcomes[0][0] == "acknowledged"
        by_reason = {k[0]: state for k, state, *_ in one["notices"]}
        assert by_reason == {"primary": "pending", "escalation": "acknowledged"}
        assert {o[3] for o in one["outbox"] if o[0][0] == "primary" and o[1] == "recall"} == {"queued"}
        assert one["ledger"][-1][2].get("chain_stopped", []) == []  # only its own message was cancelled
    if name == "lifted":
        assert outcomes[0] == ("refused", "lifted") and one["acks"] == []


async def test_fifty_concurrent_answers_leave_the_same_rows_through_both_forms(db, settings, clock, world):
    tree, user_id = world
    snaps = []
    for form in FORMS:
        t0 = clock.now()
        wid = await issue(db, settings, clock, targets=[GRID])
        nid = await fresh(db, clock, tree, wid, t0)
        clock.set(t0 + MIN)
        results = await asyncio.gather(*(run_form(form, db, notice_id=nid, now=clock.now(), case=LINK,
                                                  user_id=user_id) for _ in range(50)))
        assert sorted(r.status for r in results).count("acknowledged") == 1
        snaps.append(await snapshot(db, wid, t0))
        clock.set(t0 + 24 * 60 * MIN)
    assert snaps[0] == snaps[1]
    assert len(snaps[0]["acks"]) == 1 and len(snaps[0]["ledger"]) == 1


async def test_the_second_look_on_the_raw_pool_closes_and_cancels_as_the_session_form_does(db, settings, clock,
                                                                                         world):
    """What an escalation sweep opened while the one statement waited (here: the whole chain, none of it seen)
    is closed, and its queued chase cancelled, alike by the raw-pool statement and the session's statements."""
    tree, _ = world
    snaps = []
    for form in ("raw_pool", "session"):
        t0 = clock.now()
        wid = await issue(db, settings, clock, targets=[GRID])
        nid = await escalated(db, clock, tree, wid, t0)
        clock.set(t0 + 13 * MIN)
        if form == "raw_pool":
            await answer._rest_of_chain_alone(db, notice_id=nid, now=clock.now(), skip=[])
        else:
            async with db.session() as s:
                more = await answer._close_chain_rest(s, root=nid, answered=nid, now=clock.now(), skip=[])
                await cancel_chase(s, notice_ids=more, now=clock.now())
        snaps.append(await snapshot(db, wid, t0))
        clock.set(t0 + 24 * 60 * MIN)
    assert snaps[0] == snaps[1]
    states = {k[0]: state for k, state, *_ in snaps[0]["notices"]}
    assert states == {"primary": "pending", "escalation": "closed"}  # the answered notice itself is not touched
    escalation_messages = [o[3] for o in snaps[0]["outbox"] if o[0][0] == "escalation"]
    assert escalation_messages and set(escalation_messages) == {"cancelled"}
