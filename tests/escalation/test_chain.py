"""The 叫应 chain on a fake clock: re-calls, deputy, the levels above, and the end of the chain."""

from __future__ import annotations

from sqlalchemy import select

from tests.escalation.conftest import (
    COUNTY,
    GRID,
    MIN,
    NEIGHBOUR,
    TOWN,
    VILLAGE,
    at,
    count,
    issue,
    messages,
    notice_for,
    reload,
    set_deputy,
)
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning.messages import render_outbox
from warning_service.ledger.models import LedgerPending
from warning_service.notice.answer import acknowledge
from warning_service.notice.models import Notice
from warning_service.person import service as people
from warning_service.person.models import Person, PersonCreate


async def chain_notices(db, warning_id):
    async with db.session() as s:
        q = select(Notice).where(Notice.warning_id == warning_id).order_by(Notice.id)
        return list((await s.execute(q)).scalars())


async def test_full_red_chain_calls_three_times_then_village_then_town_then_times_out(
        db, clock, settings, tree, town_top):
    t0 = clock.now()
    wid = await issue(db, settings, clock, targets=[GRID], policy=town_top)
    grid = await notice_for(db, wid, tree.person(GRID, "grid_responsible"))
    assert [(m.kind, m.channel) for m in await messages(db, grid.id)] == [("alert", "sms")]

    assert (await at(db, clock, t0, 2.99)).claimed == 0  # nothing before the deadline
    for call, minute in enumerate((3, 6, 9), start=1):
        assert (await at(db, clock, t0, minute)).recalls == 1
        g = await reload(db, grid.id)
        assert (g.attempt_count, g.step, g.next_action_at) == (call, "recall", t0 + (minute + 3) * MIN)
        assert (await at(db, clock, t0, minute + 2)).claimed == 0
    recalls = await messages(db, grid.id, "recall")
    async with db.session() as s:
        phone = (await s.get(Person, grid.person_id)).phone
    assert [(m.channel, m.address, m.status) for m in recalls] == [("voice", phone, "queued")] * 3
    assert len({m.idempotency_key for m in recalls}) == 3

    # calls used up (no deputy): the village above is told
    r = await at(db, clock, t0, 12)
    assert r.escalated == 1 and len(r.opened) == 1
    g = await reload(db, grid.id)
    assert (g.state, g.step, g.next_action_at) == ("pending", "escalated", None)
    village = await reload(db, r.opened[0])
    assert (village.reason, village.person_id, village.region_code, village.role) == (
        "escalation", tree.person(VILLAGE, "village_responsible"), VILLAGE, "village_responsible")
    assert (village.escalation_of, village.root_id, village.round) == (grid.id, grid.id, 1)
    assert village.deadline == village.next_action_at == t0 + 15 * MIN
    assert [(m.kind, m.channel) for m in await messages(db, village.id)] == [("escalation", "sms")]

    # the village head is chased by the same rules, then the town
    for minute in (15, 18, 21):
        assert (await at(db, clock, t0, minute)).recalls == 1
    assert [(m.kind, m.channel) for m in await messages(db, village.id)] == [
        ("escalation", "sms"), ("escalation", "voice"), ("escalation", "voice"), ("escalation", "voice")]
    r = await at(db, clock, t0, 24)
    assert r.escalated == 1 and len(r.opened) == 1
    town = await reload(db, r.opened[0])
    assert (town.person_id, town.region_code, town.escalation_of, town.root_id) == (
        tree.person(TOWN, "town_responsible"), TOWN, village.id, grid.id)
    for minute in (27, 30, 33):
        assert (await at(db, clock, t0, minute)).recalls == 1

    # the top (escalate_until = town): 超时未叫应, and the grid's own notice with it
    r = await at(db, clock, t0, 36)
    assert r.timed_out == 1 and r.escalated == 0
    final = {n.id: n for n in await chain_notices(db, wid)}
    assert final[town.id].state == "timed_out" and final[grid.id].state == "timed_out"
    assert final[village.id].state == "pending" and final[village.id].step == "escalated"
    assert all(n.next_action_at is None for n in final.values())
    assert len(final) == 3  # nobody in the county was involved
    assert (await at(db, clock, t0, 120)).claimed == 0
    actions = [a for (a,) in (await _ledger_actions(db)) if a.startswith("escalation.")]
    assert actions.count("escalation.recalls") == 9
    assert actions.count("escalation.escalated") == 2 and actions.count("escalation.timed_out") == 1


async def _ledger_actions(db):
    async with db.session() as s:
        return (await s.execute(select(LedgerPending.action).order_by(LedgerPending.id))).all()


async def test_built_in_red_policy_climbs_to_the_county_before_timing_out(db, clock, settings, tree):
    t0 = clock.now()
    wid = await issue(db, settings, clock, targets=[GRID])
    for minute in range(3, 51, 3):
        await at(db, clock, t0, minute)
    by_region = {n.region_code: n for n in await chain_notices(db, wid)}
    assert set(by_region) == {GRID, VILLAGE, TOWN, COUNTY}
    assert by_region[COUNTY].role == "county_responsible" and by_region[COUNTY].state == "timed_out"
    assert by_region[GRID].state == "timed_out"
    assert len(await messages(db, by_region[COUNTY].id, "escalation")) == 4


async def test_escalation_message_names_who_did_not_answer_and_where(db, clock, settings, tree, town_top):
    t0 = clock.now()
    wid = await issue(db, settings, clock, targets=[GRID], policy=town_top)
    for minute in (3, 6, 9, 12):
        await at(db, clock, t0, minute)
    silent = await notice_for(db, wid, tree.person(GRID, "grid_responsible"))
    village = (await chain_notices(db, wid))[-1]
    [sms] = await messages(db, village.id, "escalation")
    async with db.session() as s:
        who = await s.get(Person, silent.person_id)
        text = (await render_outbox(s, rows=[sms], settings=settings))[sms.id].body
    assert who.name in text and "横湖村第1网格" in text and who.phone.removeprefix("+86") in text  # type: ignore[union-attr]
    assert "您辖区以下1人未确认" in text
    assert "/a/" in text  # their own answer link


async def test_deputy_is_called_before_the_level_above(db, clock, settings, tree, town_top):
    t0 = clock.now()
    a_post = tree.person(GRID, "grid_responsible")
    async with db.session() as s:
        b = await people.create(s, data=PersonCreate(region_code=GRID, name="B岗", role="grid_deputy",
                                                     phone="13900009999"), now=t0)
    await set_deputy(db, a_post, b.id)  # type: ignore[arg-type]
    wid = await issue(db, settings, clock, targets=[GRID], policy=town_top)
    for minute in (3, 6, 9):
        await at(db, clock, t0, minute)
    r = await at(db, clock, t0, 12)
    assert (r.deputies, r.escalated) == (1, 0)
    primary = await notice_for(db, wid, a_post)
    assert (primary.step, primary.next_action_at) == ("deputy", t0 + 15 * MIN)
    deputy = await notice_for(db, wid, b.id, reason="deputy")
    assert (deputy.escalation_of, deputy.root_id, deputy.region_code, deputy.role) == (
        primary.id, primary.id, GRID, "grid_responsible")
    [sms] = await messages(db, deputy.id)
    assert (sms.kind, sms.channel, sms.address) == ("deputy", "sms", "+8613900009999")
    async with db.session() as s:
        text = (await render_outbox(s, rows=[sms], settings=settings))[sms.id].body
    assert "B岗" in text
    assert await count(db, Notice, Notice.reason == "escalation") == 0

    # neither answered within the deadline: the village is told about the A post; the B post is re-called
    r = await at(db, clock, t0, 15)
    assert (r.escalated, r.recalls) == (1, 1)
    village = await reload(db, r.opened[0])
    assert village.escalation_of == primary.id and village.region_code == VILLAGE
    assert [m.kind for m in await messages(db, deputy.id)] == ["deputy", "deputy"]
    for minute in (18, 21):
        await at(db, clock, t0, minute)
    r = await at(db, clock, t0, 24)  # the B post's calls are used up: timed out, no second escalation
    deputy = await reload(db, deputy.id)
    assert deputy.state == "timed_out" and deputy.next_action_at is None
    assert await count(db, Notice, Notice.escalation_of == deputy.id) == 0
    assert await count(db, Notice, Notice.reason == "escalation") == 1
    r = await at(db, clock, t0, 27)  # the village head's calls are used up too: the town hears of it
    assert r.escalated == 1 and (await reload(db, r.opened[0])).escalation_of == village.id


async def test_deputy_answer_ends_the_chain_before_the_level_above(db, clock, settings, tree, town_top):
    t0 = clock.now()
    a_post = tree.person(GRID, "grid_responsible")
    async with db.session() as s:
        b = await people.create(s, data=PersonCreate(region_code=GRID, name="B岗", role="grid_deputy",
                                                     phone="13900009999"), now=t0)
    await set_deputy(db, a_post, b.id)  # type: ignore[arg-type]
    wid = await issue(db, settings, clock, targets=[GRID], policy=town_top)
    for minute in (3, 6, 9, 12):
        await at(db, clock, t0, minute)
    deputy = await notice_for(db, wid, b.id, reason="deputy")
    clock.set(t0 + 13 * MIN)
    async with db.session() as s:
        await acknowledge(s, notice_id=deputy.id, path="link", now=clock.now())
    for minute in (15, 30, 60):
        assert (await at(db, clock, t0, minute)).claimed == 0
    assert await count(db, Notice, Notice.reason == "escalation") == 0
    assert (await notice_for(db, wid, a_post)).state == "pending"  # A never answered; the record says so


async def test_an_inactive_deputy_is_passed_over(db, clock, settings, tree, town_top):
    t0 = clock.now()
    a_post = tree.person(GRID, "grid_responsible")
    async with db.session() as s:
        b = await people.create(s, data=PersonCreate(region_code=GRID, name="B岗", role="grid_deputy",
                                                     phone="13900009999", active=False), now=t0)
    await set_deputy(db, a_post, b.id)  # type: ignore[arg-type]
    await issue(db, settings, clock, targets=[GRID], policy=town_top)
    for minute in (3, 6, 9):
        await at(db, clock, t0, minute)
    r = await at(db, clock, t0, 12)
    assert (r.deputies, r.escalated) == (0, 1)


async def test_one_grids_silence_never_touches_its_neighbour(db, clock, settings, tree, town_top):
    t0 = clock.now()
    wid = await issue(db, settings, clock, targets=[GRID, NEIGHBOUR], policy=town_top)
    answered = await notice_for(db, wid, tree.person(NEIGHBOUR, "grid_responsible"))
    silent = await notice_for(db, wid, tree.person(GRID, "grid_responsible"))
    clock.set(t0 + 2 * MIN)
    async with db.session() as s:
        await acknowledge(s, notice_id=answered.id, path="link", now=clock.now())
    r = await at(db, clock, t0, 3)
    assert r.recalls == 1  # the neighbour's answer did not silence this grid
    for minute in (6, 9, 12):
        await at(db, clock, t0, minute)
    escalations = [n for n in await chain_notices(db, wid) if n.reason == "escalation"]
    assert [n.escalation_of for n in escalations] == [silent.id]
    assert (await reload(db, answered.id)).state == "acknowledged"
    assert await messages(db, answered.id, "recall") == []


async def test_a_silent_village_head_is_reported_to_the_town(db, clock, settings, tree, town_top):
    t0 = clock.now()
    wid = await issue(db, settings, clock, targets=[VILLAGE], policy=town_top)
    # every grid answers; the village head's own notice does not
    for person in (tree.person(GRID, "grid_responsible"), tree.person(NEIGHBOUR, "grid_responsible")):
        n = await notice_for(db, wid, person)
        async with db.session() as s:
            await acknowledge(s, notice_id=n.id, path="link", now=clock.now())
    for minute in (3, 6, 9):
        await at(db, clock, t0, minute)
    r = await at(db, clock, t0, 12)
    assert r.escalated == 1
    town = await reload(db, r.opened[0])
    assert (town.region_code, town.role) == (TOWN, "town_responsible")


async def test_a_person_without_a_phone_gets_a_failed_recall_the_duty_officer_can_see(
        db, clock, settings, tree, town_top):
    t0 = clock.now()
    pid = tree.person(GRID, "grid_responsible")
    async with db.session() as s:
        (await s.get(Person, pid)).phone = None  # type: ignore[union-attr]
    wid = await issue(db, settings, clock, targets=[GRID], policy=town_top)
    await at(db, clock, t0, 3)
    n = await notice_for(db, wid, pid)
    [recall] = await messages(db, n.id, "recall")
    assert (recall.status, recall.error_code, recall.channel) == ("failed", "no_address", "voice")
    assert await count(db, OutboxMessage, OutboxMessage.status == "queued",
                       OutboxMessage.kind == "recall") == 0
