"""The core: one acknowledgment per notice per round, what it stops, what it refuses."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.acknowledgment.conftest import (
    PROVINCE,
    acks,
    add_chain_notice,
    issue,
    ledger_actions,
    lift,
    notice_of,
    queued,
    reload,
    set_notice,
)
from warning_service.acknowledgment import feedback
from warning_service.acknowledgment.feedback import FeedbackIn
from warning_service.auth.models import User
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning import service as warnings
from warning_service.early_warning.models import WarningUpdate
from warning_service.errors import Conflict, Invalid, NotFound
from warning_service.notice import answer as service
from warning_service.notice.answer import NotAcknowledgeable
from warning_service.notice.models import Notice

GRID = "33108100100101"
VILLAGE = "331081001001"


async def ack(runtime, notice_id: int, path: str = "link", **kw):
    async with runtime.db.session() as s:
        return await service.acknowledge(s, notice_id=notice_id, path=path, now=runtime.clock.now(), **kw)


async def test_first_answer_is_recorded_and_closes_the_notice(runtime, db, tree, clock):
    wid = await issue(runtime, targets=[VILLAGE])
    n = await notice_of(db, wid, tree.person(GRID, "grid_responsible"))
    clock.advance(60)
    result = await ack(runtime, n.id, source="198.51.100.4")
    assert result.status == "acknowledged" and not result.already_acknowledged and not result.late
    rows = await acks(db, n.id)
    assert len(rows) == 1
    a = rows[0]
    assert (a.path, a.round, a.source, a.late, a.warning_id, a.person_id) == (
        "link", 1, "198.51.100.4", False, wid, n.person_id)
    assert a.acknowledged_at == clock.now()
    fresh = await reload(db, Notice, n.id)
    assert fresh.state == "acknowledged" and fresh.acknowledged_at == clock.now()
    assert fresh.next_action_at is None and fresh.step == "done"
    entries = await ledger_actions(db, "ack.recorded")
    assert [e.subject_id for e in entries] == [str(n.id)]
    assert entries[0].details["path"] == "link" and entries[0].details["late"] is False


async def test_second_answer_is_told_it_succeeded_and_changes_nothing(runtime, db, tree, clock):
    wid = await issue(runtime, targets=[VILLAGE])
    n = await notice_of(db, wid, tree.person(GRID, "grid_responsible"))
    first = await ack(runtime, n.id, path="sms_reply", raw_input="1", source="+8613900000001")
    clock.advance(30)
    second = await ack(runtime, n.id, path="link", source="198.51.100.4")
    assert second.status == "already_acknowledged" and second.already_acknowledged
    assert second.acknowledged_at == first.acknowledged_at and second.path == "sms_reply"
    assert len(await acks(db, n.id)) == 1
    assert len(await ledger_actions(db, "ack.recorded")) == 1


async def test_answer_after_the_deadline_is_late_and_a_timed_out_notice_can_still_be_answered(
        runtime, db, tree, clock):
    wid = await issue(runtime, targets=[VILLAGE])
    n = await notice_of(db, wid, tree.person(GRID, "grid_responsible"))
    await set_notice(db, n.id, state="timed_out", next_action_at=None)
    clock.advance(timedelta(minutes=30))
    result = await ack(runtime, n.id, path="voice_key", raw_input="1", source="+8613900000001")
    assert result.status == "acknowledged" and result.late
    assert (await acks(db, n.id))[0].late is True
    assert (await reload(db, Notice, n.id)).state == "acknowledged"


async def test_lifted_warning_and_closed_notice_refuse_answers(runtime, db, tree, clock):
    wid = await issue(runtime, targets=[VILLAGE])
    grid = await notice_of(db, wid, tree.person(GRID, "grid_responsible"))
    village = await notice_of(db, wid, tree.person(VILLAGE, "village_responsible"))
    await ack(runtime, village.id)
    await lift(runtime, wid)
    with pytest.raises(NotAcknowledgeable) as exc:
        await ack(runtime, grid.id)
    assert exc.value.extra["reason"] == "lifted"
    # the one answered before the lift is still answered, and a repeat is still "success"
    assert (await ack(runtime, village.id)).already_acknowledged
    assert len(await acks(db)) == 1


async def test_closed_notice_of_an_active_warning_refuses(runtime, db, tree):
    wid = await issue(runtime, targets=[VILLAGE])
    n = await notice_of(db, wid, tree.person(GRID, "grid_responsible"))
    await set_notice(db, n.id, state="closed")
    with pytest.raises(NotAcknowledgeable) as exc:
        await ack(runtime, n.id)
    assert exc.value.extra["reason"] == "closed"
    assert await acks(db) == []


async def test_unknown_notice_is_not_found(runtime, db, tree):
    with pytest.raises(NotFound):
        await ack(runtime, 987654)


async def test_primary_answer_closes_its_deputy_and_escalation_notices_and_cancels_their_calls(
        runtime, db, tree, clock):
    wid = await issue(runtime, targets=[VILLAGE])
    p = await notice_of(db, wid, tree.person(GRID, "grid_responsible"))
    async with db.session() as s:
        s.add(queued(p, kind="recall", now=clock.now()))
        s.add(queued(p, kind="alert", now=clock.now(), channel="email"))
    deputy = await add_chain_notice(db, primary=p, person_id=tree.person(VILLAGE, "village_responsible"),
                                    reason="deputy", now=clock.now(), queued_kind="deputy")
    up = await add_chain_notice(db, primary=p, person_id=tree.person("331081001", "town_responsible"),
                                reason="escalation", now=clock.now(), state="timed_out",
                                queued_kind="escalation")
    other = await notice_of(db, wid, tree.person("33108100100102", "grid_responsible"))
    clock.advance(400)
    result = await ack(runtime, p.id, path="sms_reply", raw_input="收到", source="+8613900000001")
    assert result.late
    d, u = await reload(db, Notice, deputy.id), await reload(db, Notice, up.id)
    assert (d.state, d.next_action_at, d.step, d.closed_at) == ("closed", None, "done", clock.now())
    # a timed-out escalation keeps saying so, but is chased no more
    assert (u.state, u.next_action_at, u.step) == ("timed_out", None, "done")
    async with db.session() as s:
        rows = (await s.execute(select(OutboxMessage).where(OutboxMessage.idempotency_key.like("test:%"))))
        by_kind = {(m.notice_id, m.kind): m for m in rows.scalars()}
    recall = by_kind[(p.id, "recall")]
    assert recall.status == "cancelled" and recall.error_code == "acknowledged"
    assert by_kind[(deputy.id, "deputy")].status == "cancelled"
    assert by_kind[(up.id, "escalation")].status == "cancelled"
    assert by_kind[(p.id, "alert")].status == "queued"  # what the warning says still arrives
    # a neighbour's notice is untouched
    assert (await reload(db, Notice, other.id)).state == "pending"
    entry = (await ledger_actions(db, "ack.recorded"))[0]
    assert sorted(entry.details["chain_stopped"]) == sorted([deputy.id, up.id])
    assert entry.details["messages_cancelled"] == 3


async def test_deputy_answer_stops_its_chain_but_the_silent_person_stays_unanswered(runtime, db, tree, clock):
    wid = await issue(runtime, targets=[VILLAGE])
    p = await notice_of(db, wid, tree.person(GRID, "grid_responsible"))
    await set_notice(db, p.id, state="delivered", step="deputy",
                     next_action_at=clock.now() + timedelta(minutes=3))
    async with db.session() as s:
        s.add(queued(p, kind="recall", now=clock.now()))
    deputy = await add_chain_notice(db, primary=p, person_id=tree.person(VILLAGE, "village_responsible"),
                                    reason="deputy", now=clock.now())
    up = await add_chain_notice(db, primary=p, person_id=tree.person("331081001", "town_responsible"),
                                reason="escalation", now=clock.now(), queued_kind="escalation")
    result = await ack(runtime, deputy.id, path="voice_key", raw_input="1", source="+8613900000002")
    assert result.status == "acknowledged"
    root, u = await reload(db, Notice, p.id), await reload(db, Notice, up.id)
    assert (root.state, root.next_action_at, root.step) == ("delivered", None, "done")
    assert (u.state, u.step) == ("closed", "done")
    assert (await reload(db, Notice, deputy.id)).state == "acknowledged"
    async with db.session() as s:
        statuses = {m.kind: m.status for m in (await s.execute(select(OutboxMessage).where(
            OutboxMessage.idempotency_key.like("test:%")))).scalars()}
    assert statuses == {"recall": "cancelled", "escalation": "cancelled"}
    # the silent person may still answer themselves, late
    clock.advance(600)
    assert (await ack(runtime, p.id)).status == "acknowledged"


async def test_an_upgrade_asks_again_and_the_new_round_is_recorded_separately(runtime, db, tree, clock):
    wid = await issue(runtime, targets=[VILLAGE], level="orange")
    n = await notice_of(db, wid, tree.person(VILLAGE, "village_responsible"))
    await ack(runtime, n.id)
    async with db.session() as s:
        await warnings.update_warning(s, warning_id=wid, data=WarningUpdate(level="red"), actor=PROVINCE,
                                      policy=runtime.policy, settings=runtime.settings, now=clock.now())
    assert (await reload(db, Notice, n.id)).state == "pending"
    clock.advance(10)
    second = await ack(runtime, n.id, path="sms_reply", raw_input="1")
    assert second.status == "acknowledged" and second.round == 2
    assert [(a.round, a.path) for a in await acks(db, n.id)] == [(1, "link"), (2, "sms_reply")]


async def test_proxy_needs_a_method_and_the_acting_user(runtime, db, tree):
    wid = await issue(runtime, targets=[VILLAGE])
    n = await notice_of(db, wid, tree.person(GRID, "grid_responsible"))
    with pytest.raises(Invalid):
        await ack(runtime, n.id, path="proxy", actor_user_id=1, proxy_method="carrier pigeon")
    with pytest.raises(Invalid):
        await ack(runtime, n.id, path="proxy", proxy_method="phone")
    with pytest.raises(ValueError):
        await ack(runtime, n.id, path="telepathy")
    assert await acks(db) == []


@pytest.mark.parametrize("concurrency", [50])
async def test_fifty_concurrent_answers_through_every_path_record_one(runtime, db, tree, clock, concurrency):
    wid = await issue(runtime, targets=[VILLAGE])
    n = await notice_of(db, wid, tree.person(GRID, "grid_responsible"))
    async with db.session() as s:
        user_id = (await s.execute(select(User.id).limit(1))).scalar_one()
    paths = ["link", "sms_reply", "voice_key", "proxy"]

    async def one(i: int):
        path = paths[i % 4]
        extra = {"proxy_method": "phone", "actor_user_id": user_id} if path == "proxy" else {}
        return await ack(runtime, n.id, path=path, source=f"src-{i}", raw_input=str(i), **extra)

    results = await asyncio.gather(*(one(i) for i in range(concurrency)))
    assert len(results) == concurrency
    assert sum(r.status == "acknowledged" for r in results) == 1
    assert all(r.status in ("acknowledged", "already_acknowledged") for r in results)
    rows = await acks(db, n.id)
    assert len(rows) == 1
    winner = next(r for r in results if r.status == "acknowledged")
    assert all(r.acknowledgment_id == rows[0].id and r.path == winner.path for r in results)
    assert len(await ledger_actions(db, "ack.recorded")) == 1


async def test_feedback_needs_an_answer_first_then_can_be_amended(runtime, db, tree, clock):
    wid = await issue(runtime, targets=[VILLAGE])
    n = await notice_of(db, wid, tree.person(GRID, "grid_responsible"))
    async with db.session() as s:
        with pytest.raises(Conflict):
            await feedback.record_feedback(s, notice_id=n.id, data=FeedbackIn(at_post=True), now=clock.now(),
                                          actor="person:1")
    await ack(runtime, n.id)
    async with db.session() as s:
        data = FeedbackIn(at_post=True, villages_affected=2, people_evacuated=40)
        f = await feedback.record_feedback(s, notice_id=n.id, now=clock.now(), actor="person:1", data=data)
        assert (f.at_post, f.villages_affected, f.people_evacuated, f.note) == (True, 2, 40, None)
    clock.advance(600)
    async with db.session() as s:
        f = await feedback.record_feedback(s, notice_id=n.id, now=clock.now(), actor="person:1",
                                          data=FeedbackIn(people_evacuated=55, note=" 已转移至村文化礼堂 "))
    assert (f.at_post, f.villages_affected, f.people_evacuated, f.note) == (True, 2, 55, "已转移至村文化礼堂")
    assert f.updated_at == clock.now() and f.created_at == clock.now() - timedelta(seconds=600)
    entries = await ledger_actions(db, "feedback.recorded")
    assert [e.details["fields"] for e in entries] == [
        {"at_post": True, "villages_affected": 2, "people_evacuated": 40},
        {"people_evacuated": 55, "note": "已转移至村文化礼堂"}]


async def test_an_answer_after_the_warning_ran_out_is_refused_before_the_expiry_job_runs(runtime, db, tree):
    wid = await issue(runtime, targets=[GRID], expires_at=runtime.clock.now() + timedelta(minutes=30))
    n = await notice_of(db, wid, tree.person(GRID, "grid_responsible"))
    runtime.clock.advance(timedelta(minutes=31))
    with pytest.raises(NotAcknowledgeable) as exc:
        await ack(runtime, n.id)
    assert exc.value.extra["reason"] == "expired"
    assert await acks(db, n.id) == []
    assert (await reload(db, Notice, n.id)).state == "pending"  # the expiry job closes it, not the answer
