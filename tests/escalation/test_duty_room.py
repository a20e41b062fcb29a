"""The end of the 叫应 chain is the duty room on shift; the duty room hears of the first silence at once."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from tests.escalation.conftest import COUNTY, GRID, MIN, TOWN, VILLAGE, at, issue, messages, notice_for, reload
from warning_service.delivery.models import OutboxMessage
from warning_service.duty import service as duty
from warning_service.duty.models import MemberIn, ShiftIn
from warning_service.early_warning.messages import render_outbox
from warning_service.early_warning.policy import load_policy
from warning_service.ledger.models import LedgerPending
from warning_service.notice.answer import acknowledge
from warning_service.notice.models import Notice

NO_WATCH = """
[levels.red]
channels = ["sms"]
escalate_until = "town"
duty_watch = false
"""


async def add_shift(db, *, region: str, start: datetime, hours: float, phones: list[str], now: datetime) -> int:
    leader, *officers = phones
    async with db.session() as s:
        shift = await duty.create_shift(s, data=ShiftIn(
            region_code=region, starts_at=start, ends_at=start + timedelta(hours=hours),
            leader=MemberIn(name=f"带班{leader[-4:]}", phone=leader),
            officers=[MemberIn(name=f"值班{p[-4:]}", phone=p) for p in officers]), now=now)
        return shift.id  # type: ignore[return-value]


async def people_of(db, shift_id: int) -> set[int]:
    async with db.session() as s:
        [pub] = await duty.public(s, [await duty.get_shift(s, shift_id=shift_id)])
    return {pub.leader.person_id, *(o.person_id for o in pub.officers)}  # type: ignore[union-attr]


async def by_reason(db, warning_id: int, reason: str) -> list[Notice]:
    async with db.session() as s:
        return list((await s.execute(select(Notice).where(Notice.warning_id == warning_id, Notice.reason == reason)
                                     .order_by(Notice.id))).scalars())


def policy_file(tmp_path: Path, text: str):
    f = tmp_path / "p.toml"
    f.write_text(text, encoding="utf-8")
    return load_policy(f)


async def test_chain_that_runs_out_goes_to_the_duty_room_of_the_shift_on_at_that_moment(
        db, clock, settings, tree, tmp_path):
    t0 = clock.now()
    # Shift A until 08:30 UTC, then shift B: the chain (grid 3–12, village 12–24, town 24–36) runs out at 36.
    a = await add_shift(db, region=COUNTY, start=t0 - timedelta(hours=1), hours=1.5,
                        phones=["13700000001", "13700000002", "13700000003"], now=t0)
    b = await add_shift(db, region=COUNTY, start=t0 + 30 * MIN, hours=8,
                        phones=["13700000011", "13700000012", "13700000013"], now=t0)
    wid = await issue(db, settings, clock, targets=[GRID], policy=policy_file(tmp_path, NO_WATCH))
    for minute in (3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33):
        await at(db, clock, t0, minute)
    town = (await by_reason(db, wid, "escalation"))[-1]
    assert town.region_code == TOWN
    r = await at(db, clock, t0, 36)
    assert (r.duty_room, r.timed_out, r.escalated) == (1, 0, 0)
    room = await by_reason(db, wid, "duty_room")
    assert {n.person_id for n in room} == await people_of(db, b)
    assert not {n.person_id for n in room} & await people_of(db, a)
    assert {(n.region_code, n.escalation_of, n.deadline) for n in room} == {(COUNTY, town.id, t0 + 39 * MIN)}
    grid = await notice_for(db, wid, tree.person(GRID, "grid_responsible"))
    assert all(n.root_id == grid.id for n in room)
    assert (await reload(db, town.id)).step == "escalated"
    [sms] = await messages(db, room[0].id, "duty_room")
    async with db.session() as s:
        text = (await render_outbox(s, rows=[sms], settings=settings))[sms.id].body
    assert "值班室" in text and "太平街道" in text and "/a/" in text

    # the duty room is chased like anyone (three voice calls), then the chain times out
    for minute in (39, 42, 45):
        assert (await at(db, clock, t0, minute)).recalls == 3
    r = await at(db, clock, t0, 48)
    assert r.timed_out == 3
    assert (await reload(db, grid.id)).state == "timed_out"
    assert {(await reload(db, n.id)).state for n in room} == {"timed_out"}
    assert (await at(db, clock, t0, 120)).claimed == 0
    async with db.session() as s:
        entries = (await s.execute(select(LedgerPending.details).where(
            LedgerPending.action == "escalation.duty_room"))).scalars().all()
    assert len(entries) == 1 and entries[0]["told"][str(town.id)]["shift_id"] == b


async def test_duty_room_answer_ends_the_chain(db, clock, settings, tree, tmp_path):
    t0 = clock.now()
    await add_shift(db, region=COUNTY, start=t0, hours=12, phones=["13700000001", "13700000002"], now=t0)
    wid = await issue(db, settings, clock, targets=[GRID], policy=policy_file(tmp_path, NO_WATCH))
    for minute in range(3, 37, 3):
        await at(db, clock, t0, minute)
    room = await by_reason(db, wid, "duty_room")
    assert len(room) == 2
    async with db.session() as s:
        await acknowledge(s, notice_id=room[0].id, path="sms_reply", now=t0 + 37 * MIN)
    await at(db, clock, t0, 39)
    grid = await notice_for(db, wid, tree.person(GRID, "grid_responsible"))
    assert (await reload(db, grid.id)).state != "timed_out"
    other = await reload(db, room[1].id)
    assert other.state == "closed" and other.next_action_at is None
    assert (await at(db, clock, t0, 120)).claimed == 0


async def test_without_a_shift_on_the_chain_times_out_as_before(db, clock, settings, tree, tmp_path):
    t0 = clock.now()
    await add_shift(db, region=COUNTY, start=t0 - timedelta(hours=12), hours=12, phones=["13700000001"], now=t0)
    wid = await issue(db, settings, clock, targets=[GRID], policy=policy_file(tmp_path, NO_WATCH))
    for minute in range(3, 37, 3):
        await at(db, clock, t0, minute)
    assert await by_reason(db, wid, "duty_room") == []
    assert (await notice_for(db, wid, tree.person(GRID, "grid_responsible"))).state == "timed_out"


async def test_duty_room_is_told_at_the_first_missed_deadline_once_per_warning(db, clock, settings, tree, town_top):
    t0 = clock.now()
    shift = await add_shift(db, region=TOWN, start=t0, hours=12, phones=["13700000001", "13700000002"], now=t0)
    # a village duty room is below the town: it is not the one told
    await add_shift(db, region=VILLAGE, start=t0, hours=12, phones=["13700000009"], now=t0)
    wid = await issue(db, settings, clock, targets=[VILLAGE], policy=town_top)  # all silent
    r = await at(db, clock, t0, 3)
    assert r.recalls == 3 and r.duty_watch == 2  # two grids and the village head; two on shift
    watch = await by_reason(db, wid, "duty_watch")
    assert {n.person_id for n in watch} == await people_of(db, shift)
    assert all(n.root_id is None and n.region_code == TOWN for n in watch)
    async with db.session() as s:
        sms = (await s.execute(select(OutboxMessage).where(OutboxMessage.notice_id == watch[0].id))).scalar_one()
        text = (await render_outbox(s, rows=[sms], settings=settings))[sms.id].body
    assert "值班提醒" in text and "横湖村" in text
    assert (await at(db, clock, t0, 6)).duty_watch == 0  # re-calls go on; the room is not told again
    # the room confirming it has seen the silence does not end anyone's chain
    async with db.session() as s:
        await acknowledge(s, notice_id=watch[0].id, path="link", now=t0 + 7 * MIN)
    assert (await at(db, clock, t0, 9)).recalls == 3
    # the one who never confirmed times out at the heads-up's deadline, unchased
    assert (await reload(db, watch[1].id)).state == "timed_out"
    assert await messages(db, watch[1].id, "duty_watch") and len(await messages(db, watch[1].id)) == 1
