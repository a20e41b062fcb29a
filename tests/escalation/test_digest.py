"""Escalation that informs: one message per recipient and sweep, saying only what is true, whose answer
informs without ending the silent person's chase, with a reply code of its own."""

from __future__ import annotations

from sqlalchemy import select

from tests.escalation.conftest import (
    COUNTY,
    GRID,
    MIN,
    NEIGHBOUR,
    PROVINCE,
    TOWN,
    VILLAGE,
    add_people,
    at,
    count,
    issue,
    notice_for,
    reload,
    set_deputy,
)
from tests.factories import make_user
from warning_service.acknowledgment import pages
from warning_service.acknowledgment.inbound import handle_sms_reply
from warning_service.auth.models import User
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning import queries
from warning_service.early_warning.messages import render_outbox
from warning_service.notice.answer import acknowledge, answer
from warning_service.notice.models import EscalationDigest, Notice
from warning_service.person.models import Person


async def sent_to(db, person_id: int, *kinds: str) -> list[OutboxMessage]:
    async with db.session() as s:
        return list((await s.execute(
            select(OutboxMessage).join(Notice, Notice.id == OutboxMessage.notice_id)
            .where(Notice.person_id == person_id, OutboxMessage.kind.in_(kinds or ("escalation",)))
            .order_by(OutboxMessage.id))).scalars())


async def text_of(db, settings, row: OutboxMessage, now) -> str:
    async with db.session() as s:
        return (await render_outbox(s, rows=[row], settings=settings, now=now))[row.id].body


async def person(db, person_id: int) -> Person:
    async with db.session() as s:
        return (await s.get(Person, person_id))  # type: ignore[return-value]


async def twenty_seven_silent_grids(db, clock, settings, tree, policy=None) -> int:
    """27 grid responsible persons under one village (26 in one grid, 1 in the next), none answering."""
    await add_people(db, region=GRID, n=25, now=clock.now())
    return await issue(db, settings, clock, targets=[GRID, NEIGHBOUR], policy=policy)


async def test_a_village_head_over_27_silent_grids_gets_one_message_per_sweep_and_so_does_the_town_head(
        db, clock, settings, tree, town_top):
    t0 = clock.now()
    wid = await twenty_seven_silent_grids(db, clock, settings, tree, town_top)
    village_head, town_head = tree.person(VILLAGE, "village_responsible"), tree.person(TOWN, "town_responsible")
    for minute in (3, 6, 9):
        await at(db, clock, t0, minute)

    r = await at(db, clock, t0, 12)
    assert r.escalated == 27 and len(r.opened) == 27  # one notice per silent person, for the audit trail
    assert [(m.channel, m.kind) for m in await sent_to(db, village_head)] == [("sms", "escalation")]
    for minute in (15, 18, 21):  # the village head's re-calls: one call per sweep, not 27
        await at(db, clock, t0, minute)
    assert [m.channel for m in await sent_to(db, village_head)] == ["sms", "voice", "voice", "voice"]

    r = await at(db, clock, t0, 24)
    assert r.escalated == 27
    [sms] = await sent_to(db, town_head)
    assert sms.channel == "sms"
    text = await text_of(db, settings, sms, clock.now())
    head = await person(db, village_head)
    assert "您辖区以下27人未确认" in text and "等27人" in text
    assert any(f"网格员{i}" in text for i in range(25))
    # The village head was never sent the warning: named only as the one it was reported to.
    assert text.count("未确认") == 1 and text.index("已上报") < text.index(f"村级防汛责任人{head.name}")
    for minute in (27, 30, 33):
        await at(db, clock, t0, minute)
    assert [m.channel for m in await sent_to(db, town_head)] == ["sms", "voice", "voice", "voice"]
    async with db.session() as s:
        assert (await s.execute(select(EscalationDigest.person_id).where(
            EscalationDigest.warning_id == wid).order_by(EscalationDigest.id))).scalars().all() == [
            village_head, town_head]


async def test_the_county_head_is_told_who_was_sent_the_warning_never_that_the_town_head_ignored_it(
        db, clock, settings, tree):
    t0 = clock.now()
    await issue(db, settings, clock, targets=[GRID])
    for minute in range(3, 40, 3):
        await at(db, clock, t0, minute)
    [sms] = [m for m in await sent_to(db, tree.person(COUNTY, "county_responsible")) if m.channel == "sms"]
    text = await text_of(db, settings, sms, clock.now())
    grid_person = await person(db, tree.person(GRID, "grid_responsible"))
    town_head = await person(db, tree.person(TOWN, "town_responsible"))
    assert "您辖区以下1人未确认" in text and grid_person.name in text
    assert text.count("未确认") == 1
    assert f"{town_head.name}未确认" not in text and text.index("已上报") < text.index(town_head.name)


async def test_answering_the_escalation_informs_and_the_silent_grids_are_still_chased(
        db, clock, settings, tree, town_top):
    t0 = clock.now()
    wid = await twenty_seven_silent_grids(db, clock, settings, tree, town_top)
    village_head = tree.person(VILLAGE, "village_responsible")
    for minute in (3, 6, 9, 12):
        await at(db, clock, t0, minute)
    [sms] = await sent_to(db, village_head)
    clock.set(t0 + 13 * MIN)
    result = await answer(db, notice_id=sms.notice_id, path="link", now=clock.now(), source="203.0.113.7")
    assert result.status == "acknowledged"
    async with db.session() as s:
        states = (await s.execute(select(Notice.reason, Notice.state, Notice.step).where(
            Notice.warning_id == wid))).all()
    assert sorted({(reason, state) for reason, state, _ in states}) == [
        ("escalation", "acknowledged"), ("primary", "pending")]  # all 27 informed; no grid person answered
    assert await count(db, Notice, Notice.warning_id == wid, Notice.reason == "primary",
                       Notice.state == "pending") == 27
    for minute in (15, 24, 36):
        assert (await at(db, clock, t0, minute)).escalated == 0  # nothing goes to the town: it is handled
    # The chase of a grid person ends with their own answer or a proxy answer with its method.
    grid = await notice_for(db, wid, tree.person(GRID, "grid_responsible"))
    await make_user(db, username="village", role="duty_officer", region=COUNTY, now=clock.now())
    async with db.session() as s:
        user_id = (await s.execute(select(User.id).where(User.username == "village"))).scalar_one()
        done = await acknowledge(s, notice_id=grid.id, path="proxy", now=clock.now(), actor_user_id=user_id,
                                 proxy_method="visit", note="村干部上门通知本人", actor="user:village")
    assert done.status == "acknowledged" and (await reload(db, grid.id)).state == "acknowledged"
    assert await count(db, Notice, Notice.warning_id == wid, Notice.reason == "primary",
                       Notice.state == "pending") == 26


async def test_the_silent_person_answering_closes_their_line_of_the_digest_but_not_the_message(
        db, clock, settings, tree, town_top):
    t0 = clock.now()
    await issue(db, settings, clock, targets=[GRID, NEIGHBOUR], policy=town_top)
    village_head = tree.person(VILLAGE, "village_responsible")
    for minute in (3, 6, 9, 12):
        await at(db, clock, t0, minute)
    [sms] = await sent_to(db, village_head)
    first = await reload(db, sms.notice_id)
    clock.set(t0 + 13 * MIN)
    async with db.session() as s:
        await acknowledge(s, notice_id=first.root_id, path="link", now=clock.now())
    assert (await reload(db, first.id)).state == "closed"
    [sms] = await sent_to(db, village_head)
    assert sms.status == "queued"  # the other grid is still silent: the message still has someone to report
    text = await text_of(db, settings, sms, clock.now())
    assert "您辖区以下1人未确认" in text


async def test_two_escalation_messages_to_one_person_carry_different_reply_codes(
        db, clock, settings, tree, town_top):
    t0 = clock.now()
    late_one = tree.person(GRID, "grid_responsible")
    await set_deputy(db, late_one, tree.person(NEIGHBOUR, "grid_responsible"))  # a B post delays its escalation
    await issue(db, settings, clock, targets=[GRID, NEIGHBOUR], policy=town_top)
    village_head = tree.person(VILLAGE, "village_responsible")
    for minute in (3, 6, 9, 12, 15):
        await at(db, clock, t0, minute)
    firsts = [m for m in await sent_to(db, village_head) if m.channel == "sms"]
    assert len(firsts) == 2
    async with db.session() as s:
        codes = (await s.execute(select(EscalationDigest.reply_code).where(EscalationDigest.person_id == village_head)
                                 .order_by(EscalationDigest.id))).scalars().all()
    assert len(set(codes)) == 2
    texts = [await text_of(db, settings, m, clock.now()) for m in firsts]
    assert [f"回{c}确认" in t for c, t in zip(codes, texts, strict=True)] == [True, True]

    head = await person(db, village_head)
    out = await handle_sms_reply(db, from_number=head.phone, body=str(codes[1]), now=clock.now(), settings=settings)
    answered = {r.notice_id for r in out.acknowledged}
    assert answered == {firsts[1].notice_id}
    assert (await reload(db, firsts[0].notice_id)).state in ("pending", "delivered")
    assert f"回复 {codes[0]}" in out.text or "回复 1" in out.text


async def test_the_missing_list_shows_each_silent_person_once_with_whom_it_was_reported_to(
        db, clock, settings, tree, town_top):
    t0 = clock.now()
    wid = await twenty_seven_silent_grids(db, clock, settings, tree, town_top)
    for minute in (3, 6, 9, 12, 15, 18, 21, 24):
        await at(db, clock, t0, minute)
    async with db.session() as s:
        total, rows = await queries.list_notices(s, warning_id=wid, actor=PROVINCE, state="unanswered", limit=500)
    assert total == 27 and {r["reason"] for r in rows} == {"primary"}
    village_head, town_head = tree.person(VILLAGE, "village_responsible"), tree.person(TOWN, "town_responsible")
    assert all([c["reason"] for c in r["chain"]] == ["escalation", "escalation"] for r in rows)
    names = {(await person(db, village_head)).name, (await person(db, town_head)).name}
    assert all({c["name"] for c in r["chain"]} == names for r in rows)
    async with db.session() as s:
        _, primary = await queries.list_notices(s, warning_id=wid, actor=PROVINCE, state="unanswered",
                                                reason="primary", limit=500)
    assert [r["chain"] for r in primary] == [r["chain"] for r in rows]  # the board asks for primary ones


async def test_the_escalation_page_lists_everyone_the_message_reported_and_who_has_answered_since(
        db, clock, settings, tree, town_top):
    t0 = clock.now()
    wid = await twenty_seven_silent_grids(db, clock, settings, tree, town_top)
    for minute in (3, 6, 9, 12):
        await at(db, clock, t0, minute)
    [sms] = await sent_to(db, tree.person(VILLAGE, "village_responsible"))
    grid = await notice_for(db, wid, tree.person(GRID, "grid_responsible"))
    async with db.session() as s:
        await acknowledge(s, notice_id=grid.id, path="link", now=clock.now())
    async with db.session() as s:
        view = await pages.load_view(s, notice_id=sms.notice_id)
    assert view is not None and view.silent is not None and len(view.silent) == 27
    grid_person = await person(db, grid.person_id)
    assert [p["answered"] for p in view.silent if p["name"] == grid_person.name] == [True]
    assert sum(not p["answered"] for p in view.silent) == 26
    html = pages.render(settings, "page.html.j2", pages.page_context(view, token="t", now=clock.now())).body
    assert "未确认人员(26/27)".encode() in html and b"tel:" in html
