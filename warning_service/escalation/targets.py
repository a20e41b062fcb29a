"""Who is called next when someone stays silent: their deputy (B post), or the level above."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from warning_service.dialect import chunks, in_ids
from warning_service.duty import service as duty
from warning_service.duty.service import DutyRoom
from warning_service.notice.models import Notice, NoticeReason, NoticeState
from warning_service.person.models import RESPONSIBLE_ROLE_BY_LEVEL, Person
from warning_service.region.models import LEVEL_ORDER, Region
from warning_service.region.service import ancestor_codes
from warning_service.response.models import EmergencyResponse, ResponseDemand


@dataclass(frozen=True)
class Responsible:
    person_id: int
    role: str
    region_code: str


@dataclass(frozen=True)
class Level:
    """One ancestor region and the active persons who answer for it."""

    code: str
    level: str
    persons: tuple[Responsible, ...]


async def deputies(session: AsyncSession, person_ids: Iterable[int]) -> dict[int, int]:
    """person id → their active deputy's id, for those who have one."""
    wanted = sorted(set(person_ids))
    deputy = aliased(Person)
    out: dict[int, int] = {}
    for part in chunks(wanted, 1000):
        rows = (await session.execute(
            select(Person.id, deputy.id).join(deputy, deputy.id == Person.deputy_id)
            .where(in_ids(session, Person.id, part), deputy.active.is_(True), deputy.id != Person.id))).all()
        out.update({pid: did for pid, did in rows})
    return out


async def deputy_notices(session: AsyncSession, notice_ids: Iterable[int]
                         ) -> dict[tuple[int, int], list[str]]:
    """(silent notice id, round) → states of the deputy notices called for it in that round."""
    wanted = sorted(set(notice_ids))
    out: dict[tuple[int, int], list[str]] = {}
    for part in chunks(wanted, 1000):
        rows = (await session.execute(select(Notice.escalation_of, Notice.round, Notice.state).where(
            in_ids(session, Notice.escalation_of, part), Notice.reason == "deputy"))).all()
        for of, rnd, state in rows:
            out.setdefault((of, rnd), []).append(state)
    return out


async def answered_chains(session: AsyncSession, roots: Iterable[int]) -> set[tuple[int, int]]:
    """(root notice id, round) of the chains answered for the silent person: by them or by their deputy.
    Whatever else of such a chain is still open needs no more chasing. (Someone above who answered was
    only informed: the silent person still owes the answer.)"""
    wanted = sorted(set(roots))
    out: set[tuple[int, int]] = set()
    for part in chunks(wanted, 1000):
        out.update((i, r) for i, r in (await session.execute(select(Notice.id, Notice.round).where(
            in_ids(session, Notice.id, part), Notice.state == NoticeState.acknowledged))).all())
        out.update((i, r) for i, r in (await session.execute(select(Notice.root_id, Notice.round).where(
            in_ids(session, Notice.root_id, part), Notice.state == NoticeState.acknowledged,
            Notice.reason == NoticeReason.deputy))).all())
    return out


async def informed(session: AsyncSession, notice_ids: Iterable[int]) -> set[int]:
    """The escalation notices among these that were answered: whatever their silence set off is moot."""
    out: set[int] = set()
    for part in chunks(sorted(set(notice_ids)), 1000):
        out.update((await session.execute(select(Notice.id).where(
            in_ids(session, Notice.id, part), Notice.state == NoticeState.acknowledged,
            Notice.reason == NoticeReason.escalation))).scalars())
    return out


async def chains_above(session: AsyncSession, region_codes: Iterable[str]) -> dict[str, list[Level]]:
    """For each region, its ancestors nearest first, each with its active responsible persons.

    The responsible role of an ancestor follows its level (grid → village_responsible for the village above,
    and so on, RESPONSIBLE_ROLE_BY_LEVEL). Three queries however many regions.
    """
    codes = sorted(set(region_codes))
    paths: dict[str, str] = {}
    for part in chunks(codes, 1000):
        paths.update(dict((await session.execute(
            select(Region.code, Region.path).where(in_ids(session, Region.code, part)))).all()))
    above = {c: list(reversed(ancestor_codes(p)[:-1])) for c, p in paths.items()}
    wanted = sorted({a for chain in above.values() for a in chain})
    levels: dict[str, str] = {}
    for part in chunks(wanted, 1000):
        levels.update(dict((await session.execute(
            select(Region.code, Region.level).where(in_ids(session, Region.code, part)))).all()))
    answering = sorted(c for c in wanted if levels.get(c) in RESPONSIBLE_ROLE_BY_LEVEL)
    persons: dict[str, list[Responsible]] = {}
    for part in chunks(answering, 1000):
        rows = (await session.execute(
            select(Person.id, Person.role, Person.region_code)
            .where(in_ids(session, Person.region_code, part), Person.active.is_(True),
                   Person.role.in_(sorted(set(RESPONSIBLE_ROLE_BY_LEVEL.values()))))
            .order_by(Person.id))).all()
        for pid, role, code in rows:
            if RESPONSIBLE_ROLE_BY_LEVEL[levels[code]] == role:
                persons.setdefault(code, []).append(Responsible(pid, role, code))
    return {c: [Level(a, levels[a], tuple(persons.get(a, ()))) for a in chain if a in levels]
            for c, chain in above.items()}


def next_level_up(chain: list[Level], *, until: str, exclude_person: int) -> Level | None:
    """The nearest ancestor, not above `until`, with someone (other than the silent person) to tell."""
    for lvl in chain:
        if lvl.level not in RESPONSIBLE_ROLE_BY_LEVEL:
            break  # above county there is nobody left in the chain of responsibility
        if LEVEL_ORDER[lvl.level] < LEVEL_ORDER[until]:
            break
        persons = tuple(p for p in lvl.persons if p.person_id != exclude_person)
        if persons:
            return Level(lvl.code, lvl.level, persons)
    return None


async def duty_room(session: AsyncSession, region_codes: Iterable[str], *, at: datetime,
                    lowest: str | None = None) -> dict[str, DutyRoom]:
    """region → the nearest duty room at or above it with a shift on at `at` (see duty/service.py)."""
    return await duty.duty_rooms(session, region_codes, at=at, lowest=lowest)


def on_duty_except(room: DutyRoom, person_id: int) -> list[Responsible]:
    """The people on shift in `room`, leaving out the silent person should they sit in it."""
    return [Responsible(p.person_id, "duty_leader" if p.seat == "leader" else "duty_officer", room.region_code)
            for p in room.persons if p.person_id != person_id]


async def response_policies(session: AsyncSession, notice_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """到岗 demand notice id → the chase policy of the response that demanded it."""
    wanted = sorted(set(notice_ids))
    out: dict[int, dict[str, Any]] = {}
    for part in chunks(wanted, 1000):
        rows = (await session.execute(
            select(ResponseDemand.notice_id, EmergencyResponse.policy)
            .join(EmergencyResponse, EmergencyResponse.id == ResponseDemand.response_id)
            .where(in_ids(session, ResponseDemand.notice_id, part)))).all()
        out.update({nid: dict(policy.get("chase") or {}) for nid, policy in rows})
    return out
