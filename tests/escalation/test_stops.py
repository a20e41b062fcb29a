"""What ends or restarts a chain: an answer, a lift, an expiry, an upgrade."""

from __future__ import annotations

from sqlalchemy import select

from tests.escalation.conftest import (
    GRID,
    MIN,
    TOWN,
    VILLAGE,
    at,
    count,
    issue,
    lift,
    messages,
    notice_for,
    reload,
    upgrade,
)
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning.models import EarlyWarning
from warning_service.escalation.service import escalation_tick
from warning_service.notice.answer import acknowledge
from warning_service.notice.models import Notice


async def outbox_count(db, warning_id, *kinds):
    return await count(db, OutboxMessage, OutboxMessage.warning_id == warning_id,
                       OutboxMessage.kind.in_(kinds))


async def test_an_answer_mid_chain_stops_the_calls_at_once(db, clock, settings, tree, town_top):
    t0 = clock.now()
    wid = await issue(db, settings, clock, targets=[GRID], policy=town_top)
    n = await notice_for(db, wid, tree.person(GRID, "grid_responsible"))
    await at(db, clock, t0, 3)
    await at(db, clock, t0, 6)
    [first, second] = await messages(db, n.id, "recall")
    async with db.session() as s:  # the first call went out; the second is still queued
        (await s.get(OutboxMessage, first.id)).status = "sent"  # type: ignore[union-attr]
    clock.set(t0 + 7 * MIN)
    async with db.session() as s:
        await acknowledge(s, notice_id=n.id, path="voice_key", now=clock.now(), source="+8613900000005")
    assert (await reload(db, n.id)).state == "acknowledged"
    assert [m.status for m in await messages(db, n.id, "recall")] == ["sent", "cancelled"]
    for minute in (9, 12, 30, 120):
        assert (await at(db, clock, t0, minute)).claimed == 0
    assert await outbox_count(db, wid, "recall", "escalation", "deputy") == 2
    assert await count(db, Notice, Notice.warning_id == wid) == 1


async def test_an_answer_from_the_village_head_ends_the_chain_above_the_silent_grid(
        db, clock, settings, tree, town_top):
    t0 = clock.now()
    wid = await issue(db, settings, clock, targets=[GRID], policy=town_top)
    for minute in (3, 6, 9):
        await at(db, clock, t0, minute)
    village = (await at(db, clock, t0, 12)).opened[0]
    await at(db, clock, t0, 15)
    clock.set(t0 + 16 * MIN)
    async with db.session() as s:
        await acknowledge(s, notice_id=village, path="link", now=clock.now())
    for minute in (18, 21, 24, 60):
        assert (await at(db, clock, t0, minute)).claimed == 0
    assert await count(db, Notice, Notice.region_code == TOWN) == 0
    grid = await notice_for(db, wid, tree.person(GRID, "grid_responsible"))
    assert grid.state == "pending" and grid.next_action_at is None  # the grid itself never answered


async def test_the_silent_person_answering_late_closes_the_escalation_above_them(
        db, clock, settings, tree, town_top):
    t0 = clock.now()
    wid = await issue(db, settings, clock, targets=[GRID], policy=town_top)
    for minute in (3, 6, 9):
        await at(db, clock, t0, minute)
    village = (await at(db, clock, t0, 12)).opened[0]
    grid = await notice_for(db, wid, tree.person(GRID, "grid_responsible"))
    clock.set(t0 + 13 * MIN)
    async with db.session() as s:
        await acknowledge(s, notice_id=grid.id, path="link", now=clock.now())
    assert (await reload(db, village)).state == "closed"
    assert [m.status for m in await messages(db, village)] == ["cancelled"]
    for minute in (15, 18, 60):
        assert (await at(db, clock, t0, minute)).claimed == 0


async def test_a_lift_stops_every_chain_of_the_warning(db, clock, settings, tree, town_top):
    t0 = clock.now()
    wid = await issue(db, settings, clock, targets=[VILLAGE], policy=town_top)
    for minute in (3, 6, 9, 12):
        await at(db, clock, t0, minute)
    assert await count(db, Notice, Notice.warning_id == wid, Notice.reason == "escalation") == 3
    clock.set(t0 + 13 * MIN)
    await lift(db, clock, wid)
    chase_before = await outbox_count(db, wid, "recall", "escalation", "deputy")
    assert await count(db, OutboxMessage, OutboxMessage.warning_id == wid, OutboxMessage.status == "queued",
                       OutboxMessage.kind.in_(("recall", "escalation"))) == 0
    for minute in (15, 18, 60):
        assert (await at(db, clock, t0, minute)).claimed == 0
    assert await outbox_count(db, wid, "recall", "escalation", "deputy") == chase_before
    async with db.session() as s:
        states = set((await s.execute(select(Notice.state).where(Notice.warning_id == wid))).scalars())
    assert states == {"closed"}


async def test_expiry_ends_the_calling_before_the_sweep_acts(runtime, db, clock, settings, tree, town_top):
    t0 = clock.now()
    wid = await issue(db, settings, clock, targets=[GRID], policy=town_top, expires_at=t0 + 10 * MIN)
    for minute in (3, 6):
        clock.set(t0 + minute * MIN)
        assert await escalation_tick(runtime) == 1
    clock.set(t0 + 10 * MIN)  # the third call would be due at 9; the warning ran out at 10
    assert await escalation_tick(runtime) == 0
    async with db.session() as s:
        assert (await s.get(EarlyWarning, wid)).state == "expired"  # type: ignore[union-attr]
    n = await notice_for(db, wid, tree.person(GRID, "grid_responsible"))
    assert (n.state, n.next_action_at) == ("closed", None)
    assert len(await messages(db, n.id, "recall")) == 2


async def test_an_upgrade_restarts_the_clock_under_the_new_policy(db, clock, settings, tree, town_top):
    t0 = clock.now()
    # orange: village and town heads, 5 minutes to answer, 3 calls 5 minutes apart, then the level above
    wid = await issue(db, settings, clock, targets=[VILLAGE], policy=town_top, level="orange")
    head = await notice_for(db, wid, tree.person(VILLAGE, "village_responsible"))
    for minute in (5, 10, 15):
        await at(db, clock, t0, minute)
    [town_notice] = (await at(db, clock, t0, 20)).opened_for(head.id)
    assert (await reload(db, town_notice)).region_code == "331081001"

    clock.set(t0 + 21 * MIN)
    await upgrade(db, settings, clock, wid, level="red", policy=town_top)
    head = await reload(db, head.id)
    assert (head.round, head.attempt_count, head.step) == (2, 0, "initial")
    assert head.next_action_at == t0 + 24 * MIN
    assert (await reload(db, town_notice)).state == "closed"  # the orange chain ended with the upgrade
    assert (await at(db, clock, t0, 23.9)).claimed == 0

    # red: 3 minutes, calls 3 minutes apart; the same town head is told again, in the new round
    for minute in (24, 27, 30):
        assert (await at(db, clock, t0, minute)).recalls >= 1
    keys = [m.idempotency_key for m in await messages(db, head.id, "recall")]
    assert len(keys) == 6 and len(set(keys)) == 6
    r = await at(db, clock, t0, 33)
    reopened = await reload(db, town_notice)
    assert r.opened_for(head.id) == [town_notice]
    assert (reopened.state, reopened.round, reopened.deadline, reopened.attempt_count) == (
        "pending", 2, t0 + 36 * MIN, 0)
    firsts = await messages(db, town_notice, "escalation")
    assert [(m.status, m.revision) for m in firsts] == [("cancelled", 1), ("queued", 2)]
