"""What the texts of 转移避险 say: the renderer (early_warning/messages.py) asks here for the household, special
person or place a notice is about, or the area a 解除转移 message releases, and renders templates/<channel>/
evacuation.j2, special.j2 and evac_release.j2 with it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.delivery.models import MessageKind
from warning_service.evacuation.models import (
    SPECIAL_PERSON_ACTION,
    SPECIAL_PERSON_ZH,
    SPECIAL_PLACE_ACTION,
    SPECIAL_PLACE_ZH,
    VULNERABLE_ZH,
    ZONE_KIND_ZH,
    DangerZone,
    EvacuationTask,
    Household,
    SpecialNotice,
    SpecialPerson,
    SpecialPlace,
    Subject,
)
from warning_service.notice.models import NoticeReason
from warning_service.region.models import Region

TASK_PATH = "e"  # the task page: /e/<token>
ACK_PATH = "a"


@dataclass(frozen=True)
class Topic:
    """A message's own template, link path and values, when it is about a household, a special person or
    place, or a release."""

    template: str
    path: str
    values: dict[str, Any]


@dataclass
class Loaded:
    tasks: dict[int, dict[str, Any]] = field(default_factory=dict)  # notice id → household
    special: dict[int, dict[str, Any]] = field(default_factory=dict)  # notice id → special person or place
    areas: dict[str, str] = field(default_factory=dict)  # released region code → name


async def load(session: AsyncSession, *, rows: Sequence[Any], notices: dict[int, Any]) -> Loaded:
    """Everything the batch's evacuation texts need, in at most four queries."""
    out = Loaded()
    task_ids = [nid for nid, n in notices.items() if n.reason == NoticeReason.evacuation]
    if task_ids:
        village = Region.__table__.alias("village")
        for r in (
            await session.execute(
                select(
                    EvacuationTask.notice_id,
                    EvacuationTask.released_at,
                    Household.name,
                    Household.people,
                    Household.phone,
                    Household.vulnerable,
                    DangerZone.name,
                    DangerZone.kind,
                    village.c.name,
                )
                .join(Household, Household.id == EvacuationTask.household_id)
                .join(DangerZone, DangerZone.id == EvacuationTask.zone_id)
                .outerjoin(village, village.c.code == DangerZone.village_code)
                .where(EvacuationTask.notice_id.in_(task_ids))
            )
        ).all():
            out.tasks[r[0]] = {
                "released": r[1] is not None,
                "household": r[2],
                "people": r[3],
                "phone": r[4] or "",
                "vulnerable": "、".join(VULNERABLE_ZH.get(v, v) for v in (r[5] or "").split(",") if v),
                "zone": r[6],
                "zone_kind": ZONE_KIND_ZH.get(r[7], r[7]),
                "village": r[8] or "",
            }
    special_ids = [nid for nid, n in notices.items() if n.reason == NoticeReason.special]
    if special_ids:
        links = (
            await session.execute(
                select(SpecialNotice.notice_id, SpecialNotice.subject, SpecialNotice.subject_id).where(
                    SpecialNotice.notice_id.in_(special_ids)
                )
            )
        ).all()
        persons = {
            p.id: p
            for p in (
                await session.execute(
                    select(SpecialPerson).where(
                        SpecialPerson.id.in_([s for _, kind, s in links if kind == Subject.person])
                    )
                )
            ).scalars()
        }
        places = {
            p.id: p
            for p in (
                await session.execute(
                    select(SpecialPlace).where(
                        SpecialPlace.id.in_([s for _, kind, s in links if kind == Subject.place])
                    )
                )
            ).scalars()
        }
        for nid, kind, sid in links:
            if kind == Subject.person and sid in persons:
                p = persons[sid]
                out.special[nid] = {
                    "kind": "person",
                    "name": p.name,
                    "phone": p.phone or "",
                    "category": SPECIAL_PERSON_ZH.get(p.category, p.category),
                    "action": SPECIAL_PERSON_ACTION,
                }
            elif kind == Subject.place and sid in places:
                p = places[sid]
                out.special[nid] = {
                    "kind": "place",
                    "name": p.name,
                    "phone": "",
                    "category": SPECIAL_PLACE_ZH.get(p.category, p.category),
                    "action": SPECIAL_PLACE_ACTION.get(p.category, SPECIAL_PLACE_ACTION["other"]),
                }
    areas = {r.region_code for r in rows if r.kind == MessageKind.evac_release and r.region_code}
    if areas:
        out.areas = dict(
            (await session.execute(select(Region.code, Region.name).where(Region.code.in_(sorted(areas))))).all()
        )
    return out


def topic(loaded: Loaded, *, row: Any, notice: Any) -> Topic | None:
    """The evacuation topic of an outbox row, or None for an ordinary warning message.

    A deputy's or the level above's message about a silent 包户责任人 stays an ordinary chase message: it is
    about the person, and its notice is not the task's.
    """
    if row.kind == MessageKind.evac_release:
        return Topic("evac_release", ACK_PATH, {"area": loaded.areas.get(row.region_code or "", row.region_code or "")})
    if notice is None or row.kind in (MessageKind.deputy, MessageKind.escalation):
        return None
    if notice.id in loaded.tasks:
        return Topic("evacuation", TASK_PATH, loaded.tasks[notice.id])
    if notice.id in loaded.special:
        return Topic("special", ACK_PATH, loaded.special[notice.id])
    return None
