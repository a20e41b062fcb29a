"""The shelter manager's page of one warning: who is expected, who arrived, who left, occupancy vs capacity.

When a warning opens 转移任务 in a shelter's area (zones under the shelter's region), the shelter's manager
gets one SMS with a link /s/<token>: no login, the token an HMAC of the `shelter_link` id under a key of
its own (a notice's token opens nothing here, and this one no task page). The link ends when 解除转移 has
reached every household expected there (plus the ack-link grace period), or after LINK_DAYS at most.
Every arrival and departure is in the ledger.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, and_, cast, exists, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.db import UTCDateTime
from warning_service.delivery.models import MessageKind, OutboxMessage
from warning_service.dialect import chunks, in_ids, insert
from warning_service.early_warning.models import LEVEL_RANK, EarlyWarning
from warning_service.errors import Conflict, Invalid, NotFound
from warning_service.evacuation.models import (
    MESSAGE_COLUMNS,
    DangerZone,
    EvacuationTask,
    Household,
    Shelter,
    ShelterLink,
    TaskStatus,
)
from warning_service.ledger import service as ledger
from warning_service.notice.tokens import make_token, parse_token
from warning_service.person.models import Person
from warning_service.region.models import Region
from warning_service.region.scope import PAST_SUBTREE

T, H, Z, SH = EvacuationTask.__table__, Household.__table__, DangerZone.__table__, Shelter.__table__
L, P, R, OUTBOX = ShelterLink.__table__, Person.__table__, Region.__table__, OutboxMessage.__table__
LINK_DAYS = 30  # an evacuation nobody released still ends its links after a month
PAGE_PATH = "s"


def page_key(link_key: bytes) -> bytes:
    """The shelter pages' own HMAC key, derived from the ack links' key."""
    return hashlib.sha256(b"warning-service shelter-page v1:" + link_key).digest()


def token_for(link_id: int, *, link_key: bytes) -> str:
    return make_token(link_id, key=page_key(link_key))


def link_from_token(token: str, *, link_key: bytes) -> int | None:
    return parse_token(token, key=page_key(link_key))


def _outbox_key(link_id: Any) -> Any:
    return literal("shl") + cast(link_id, String) + literal(":sms")


async def open_links(session: AsyncSession, *, warning: EarlyWarning, zone_ids: list[int], now: datetime) -> int:
    """A link (and its SMS) for the manager of every active shelter whose region holds one of these zones
    (those the warning just opened tasks in), once per warning and shelter. Returns how many opened.

    A county has a few hundred shelters and a few thousand zone regions: matched here in Python, from two
    small reads, rather than by a join over the tasks just written."""
    paths: set[str] = set()
    for part in chunks(zone_ids, 5000):
        paths |= set(
            (
                await session.execute(
                    select(R.c.path)
                    .join(Z, Z.c.region_code == R.c.code)
                    .where(in_ids(session, Z.c.id, part))
                    .distinct()
                )
            ).scalars()
        )
    if not paths:
        return 0
    ordered = sorted(paths)
    candidates = (
        await session.execute(
            select(SH.c.id, SH.c.manager_id, R.c.path)
            .select_from(SH.join(R, R.c.code == SH.c.region_code).join(P, P.c.id == SH.c.manager_id))
            .where(
                SH.c.active.is_(True),
                P.c.active.is_(True),
                ~exists().where(L.c.warning_id == warning.id, L.c.shelter_id == SH.c.id),
            )
        )
    ).all()
    rows = []
    for shelter_id, manager_id, path in candidates:
        first = bisect_left(ordered, path)  # the first zone path at or after the shelter's own
        if first < len(ordered) and ordered[first].startswith(path):
            rows.append(
                {
                    "warning_id": warning.id,
                    "shelter_id": shelter_id,
                    "manager_id": manager_id,
                    "expires_at": now + timedelta(days=LINK_DAYS),
                    "created_at": now,
                }
            )
    if not rows:
        return 0
    floor = int((await session.execute(select(func.coalesce(func.max(L.c.id), 0)))).scalar_one())
    await session.execute(insert(session, L), rows)
    n = len(rows)
    if not n:
        return 0
    new = and_(L.c.warning_id == warning.id, L.c.id > floor)
    msg = (
        select(
            literal(warning.id, Integer),
            literal(warning.revision, Integer),
            literal(MessageKind.evac_shelter.value),
            literal("sms"),
            P.c.phone,
            SH.c.region_code,
            literal(LEVEL_RANK[warning.level], Integer),
            literal("queued"),
            literal(0, Integer),
            literal(now, UTCDateTime),
            _outbox_key(L.c.id),
            literal(now, UTCDateTime),
            literal(now, UTCDateTime),
        )
        .select_from(L.join(SH, SH.c.id == L.c.shelter_id).join(P, P.c.id == L.c.manager_id))
        .where(new, P.c.phone.is_not(None), P.c.phone != "")
    )
    await session.execute(
        insert(session, OUTBOX).from_select(
            MESSAGE_COLUMNS,
            msg,
        )
    )
    # The renderer finds the link of a message through outbox_id (the idempotency key is unique, indexed).
    await session.execute(
        update(L)
        .where(new)
        .values(outbox_id=select(OUTBOX.c.id).where(OUTBOX.c.idempotency_key == _outbox_key(L.c.id)).scalar_subquery())
    )
    return n


def _expected(warning_id: int, shelter_id: int, shelter_path: str) -> Any:
    """SQL over tasks: households this shelter should expect — in zones of its area, or reported moved to it."""
    return and_(
        T.c.warning_id == warning_id,
        or_(
            T.c.shelter_id == shelter_id,
            and_(R.c.path >= shelter_path, R.c.path < shelter_path + PAST_SUBTREE),
        ),
    )


async def expire_released(session: AsyncSession, *, warning_id: int, now: datetime) -> None:
    """After a 解除转移: the links of shelters with no unreleased household left end now (plus the grace)."""
    links = (
        await session.execute(
            select(L.c.id, L.c.shelter_id, R.c.path)
            .select_from(L.join(SH, SH.c.id == L.c.shelter_id).join(R, R.c.code == SH.c.region_code))
            .where(L.c.warning_id == warning_id, L.c.expires_at > now)
        )
    ).all()
    for link_id, shelter_id, path in links:
        waiting = (
            await session.execute(
                select(T.c.id)
                .select_from(T.join(Z, Z.c.id == T.c.zone_id).join(R, R.c.code == Z.c.region_code))
                .where(_expected(warning_id, shelter_id, path), T.c.released_at.is_(None))
                .limit(1)
            )
        ).first()
        if waiting is None:
            await session.execute(update(L).where(L.c.id == link_id).values(expires_at=now))


# --- the page ------------------------------------------------------------------------------------------------


@dataclass
class LinkView:
    link: ShelterLink
    shelter: Shelter
    warning: EarlyWarning
    path: str
    manager: Person


async def load_link(session: AsyncSession, *, link_id: int) -> LinkView | None:
    row = (
        await session.execute(
            select(ShelterLink, Shelter, EarlyWarning, Region.path, Person)
            .join(Shelter, Shelter.id == ShelterLink.shelter_id)
            .join(EarlyWarning, EarlyWarning.id == ShelterLink.warning_id)
            .join(Region, Region.code == Shelter.region_code)
            .join(Person, Person.id == ShelterLink.manager_id)
            .where(ShelterLink.id == link_id)
        )
    ).first()
    return LinkView(*row) if row else None


def gone(view: LinkView, *, now: datetime, grace_hours: int) -> bool:
    return now > view.link.expires_at + timedelta(hours=grace_hours)


@dataclass
class Expected:
    task_id: int
    household: str
    people: int
    vulnerable: str
    place: str
    status: str
    here: bool  # reported moved to this shelter
    people_moved: int | None
    arrived: int
    departed: int
    released: bool
    returned_early: bool


@dataclass
class Occupancy:
    capacity: int
    reported: int  # people the keepers reported moved here
    present: int  # arrived minus departed
    arrived: int
    departed: int


async def expected(session: AsyncSession, *, view: LinkView) -> list[Expected]:
    """The households this shelter expects: those reported moved here first, then pending ones."""
    village = R.alias("village")
    rows = (
        await session.execute(
            select(
                T.c.id,
                H.c.name,
                H.c.people,
                H.c.vulnerable,
                village.c.name,
                Z.c.name,
                T.c.status,
                T.c.shelter_id,
                T.c.people_moved,
                T.c.arrived_people,
                T.c.departed_people,
                T.c.released_at,
                T.c.returned_early,
            )
            .select_from(
                T.join(H, H.c.id == T.c.household_id)
                .join(Z, Z.c.id == T.c.zone_id)
                .join(R, R.c.code == Z.c.region_code)
                .outerjoin(village, village.c.code == Z.c.village_code)
            )
            .where(_expected(view.warning.id, view.shelter.id, view.path))  # type: ignore[arg-type]
            .order_by(T.c.id)
        )
    ).all()
    out = [
        Expected(
            task_id=r[0],
            household=r[1],
            people=r[2],
            vulnerable=r[3] or "",
            place=r[5] if r[4] and r[5].startswith(r[4]) else f"{r[4] or ''}{r[5]}",
            status=r[6],
            here=r[7] == view.shelter.id,
            people_moved=r[8],
            arrived=r[9] or 0,
            departed=r[10] or 0,
            released=r[11] is not None,
            returned_early=r[12],
        )
        for r in rows
        # Households gone to another shelter or to relatives are not expected here.
        if r[7] == view.shelter.id or r[6] not in (TaskStatus.moved, TaskStatus.with_relatives)
    ]
    out.sort(key=lambda e: (not e.here, e.arrived > 0, e.task_id))
    return out


def occupancy(view: LinkView, rows: list[Expected]) -> Occupancy:
    here = [e for e in rows if e.here]
    arrived = sum(e.arrived for e in here)
    departed = sum(e.departed for e in here)
    return Occupancy(
        capacity=view.shelter.capacity,
        reported=sum(e.people_moved or 0 for e in here),
        present=arrived - departed,
        arrived=arrived,
        departed=departed,
    )


async def _task(session: AsyncSession, *, view: LinkView, task_id: int) -> tuple[EvacuationTask, Household]:
    row = (
        await session.execute(
            select(EvacuationTask, Household)
            .join(Household, Household.id == EvacuationTask.household_id)
            .join(DangerZone, DangerZone.id == EvacuationTask.zone_id)
            .join(Region, Region.code == DangerZone.region_code)
            .where(EvacuationTask.id == task_id, _expected(view.warning.id, view.shelter.id, view.path))  # type: ignore[arg-type]
            .with_for_update(of=EvacuationTask)
        )
    ).first()
    if row is None:
        raise NotFound(f"task {task_id} is not expected at this shelter", "该户不在本安置点名单中", field="task_id")
    return row[0], row[1]


async def arrive(session: AsyncSession, *, view: LinkView, task_id: int, people: int, now: datetime) -> EvacuationTask:
    """The manager saw `people` of the household arrive: the household is 已转移 to this shelter (whatever its
    keeper has reported so far), and the arrival is added to those already recorded."""
    task, household = await _task(session, view=view, task_id=task_id)
    if task.released_at is not None:
        raise Conflict("this household was already released", "该户已解除转移", field="task_id")
    arrived = (task.arrived_people or 0) if task.shelter_id == view.shelter.id else 0
    if people < 1 or arrived + people > household.people:
        raise Invalid(
            f"the household has {household.people} people, {arrived} already arrived",
            f"该户共 {household.people} 人,已到达 {arrived} 人",
            field="people",
        )
    before = {"status": task.status, "shelter_id": task.shelter_id, "arrived_people": task.arrived_people}
    if task.shelter_id != view.shelter.id:
        task.departed_people, task.departed_at = None, None
    task.status, task.shelter_id = TaskStatus.moved.value, view.shelter.id
    task.arrived_people, task.arrived_at, task.updated_at = arrived + people, now, now
    task.people_moved = max(task.people_moved or 0, task.arrived_people)
    await session.flush()
    await ledger.append(
        session,
        at=now,
        actor=f"person:{view.manager.id}",
        action="evacuation.arrival",
        subject_type="evacuation_task",
        subject_id=task.id,
        details={
            "shelter_id": view.shelter.id,
            "people": people,
            "warning_id": task.warning_id,
            "before": before,
            "via": "shelter_page",
        },
    )
    return task


async def depart(session: AsyncSession, *, view: LinkView, task_id: int, people: int, now: datetime) -> EvacuationTask:
    """`people` of the household left the shelter (to relatives, hospital, or home after 解除转移)."""
    task, _ = await _task(session, view=view, task_id=task_id)
    present = (task.arrived_people or 0) - (task.departed_people or 0) if task.shelter_id == view.shelter.id else 0
    if people < 1 or people > present:
        raise Invalid(f"only {present} of the household are here", f"该户在点仅 {present} 人", field="people")
    task.departed_people = (task.departed_people or 0) + people
    task.departed_at, task.updated_at = now, now
    await session.flush()
    await ledger.append(
        session,
        at=now,
        actor=f"person:{view.manager.id}",
        action="evacuation.departure",
        subject_type="evacuation_task",
        subject_id=task.id,
        details={
            "shelter_id": view.shelter.id,
            "people": people,
            "warning_id": task.warning_id,
            "released": task.released_at is not None,
        },
    )
    return task
