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
    Shelter,
    ShelterLink,
    SpecialNotice,
    SpecialPerson,
    SpecialPlace,
    Subject,
)
from warning_service.notice.models import NoticeReason
from warning_service.region.models import Region

TASK_PATH = "e"  # the task page: /e/<token>
ACK_PATH = "a"
SHELTER_PATH = "s"  # the shelter manager's page: /s/<token>


@dataclass(frozen=True)
class Topic:
    """A message's own template, link path and values, when it is about a household, a special person or
    place, or a release."""

    template: str
    path: str
    values: dict[str, Any]
    link_id: int | None = None  # the link is a shelter page's (evacuation/shelters.py), not the notice's


@dataclass
class Loaded:
    tasks: dict[int, dict[str, Any]] = field(default_factory=dict)  # notice id → household
    special: dict[int, dict[str, Any]] = field(default_factory=dict)  # notice id → special person or place
    areas: dict[str, str] = field(default_factory=dict)  # released region code → name
    shelters: dict[int, dict[str, Any]] = field(default_factory=dict)  # outbox id → shelter page link


async def load(session: AsyncSession, *, rows: Sequence[Any], notices: dict[int, Any]) -> Loaded:
    """Everything the batch's evacuation texts need, in at most four queries."""
    out = Loaded()
    task_ids = [nid for nid, n in notices.items() if n.reason == NoticeReason.evacuation]
    if task_ids:
        village = Region.__table__.alias("village")
        rows_by_notice: dict[int, list[Any]] = {}
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
                .order_by(EvacuationTask.notice_id, EvacuationTask.id)
            )
        ).all():
            rows_by_notice.setdefault(r[0], []).append(r)
        for nid, hs in rows_by_notice.items():
            out.tasks[nid] = keeper_values(hs)
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
    shelter_rows = [r.id for r in rows if r.kind == MessageKind.evac_shelter]
    if shelter_rows:
        for link_id, outbox_id, name, capacity, address in (
            await session.execute(
                select(ShelterLink.id, ShelterLink.outbox_id, Shelter.name, Shelter.capacity, Shelter.address)
                .join(Shelter, Shelter.id == ShelterLink.shelter_id)
                .where(ShelterLink.outbox_id.in_(shelter_rows))
            )
        ).all():
            out.shelters[outbox_id] = {
                "link_id": link_id,
                "shelter": name,
                "capacity": capacity,
                "address": address or "",
            }
    return out


# The SMS names this many households; the rest are "等N户" behind the link (keeps it to ~3 segments).
SMS_HOUSEHOLDS = 3


def _vulnerable(raw: str | None) -> str:
    return "、".join(VULNERABLE_ZH.get(v, v) for v in (raw or "").split(",") if v)


def keeper_values(rows: Sequence[Any]) -> dict[str, Any]:
    """What a keeper's text says: their households (vulnerable ones named first), how many people, where.

    `rows`: (notice_id, released_at, name, people, phone, vulnerable, zone, zone_kind, village) per household.
    """
    ordered = sorted(rows, key=lambda r: (not r[5], r[2]))
    listed = [{"name": r[2], "people": r[3], "vulnerable": _vulnerable(r[5])} for r in ordered[:SMS_HOUSEHOLDS]]
    # "横湖村后山山洪危险区", not "横湖村横湖村后山…": the village is named only when the zone's name lacks it.
    places = list(dict.fromkeys(r[6] if r[8] and r[6].startswith(r[8]) else f"{r[8] or ''}{r[6]}" for r in rows))
    one = rows[0]
    return {
        "released": all(r[1] is not None for r in rows),
        "count": len(rows),
        "people": sum(r[3] for r in rows),
        "listed": listed,
        "more": max(0, len(rows) - len(listed)),
        "places": "、".join(places[:2]) + (f"等{len(places)}处" if len(places) > 2 else ""),
        # A keeper of one household gets its details as before: the name, phone, vulnerable members.
        "household": one[2],
        "phone": (one[4] or "") if len(rows) == 1 else "",
        "vulnerable": "、".join(dict.fromkeys(v for r in rows for v in _vulnerable(r[5]).split("、") if v)),
        "zone": one[6],
        "zone_kind": ZONE_KIND_ZH.get(one[7], one[7]),
        "village": one[8] or "",
    }


def sms_variants(values: dict[str, Any]) -> list[dict[str, Any]]:
    """A keeper's text values naming SMS_HOUSEHOLDS, then fewer, of their households (the renderer takes the
    first that fits the SMS segments); any other values as they are."""
    listed = values.get("listed")
    if not listed:
        return [values]
    count = values["count"]
    return [{**values, "listed": listed[:n], "more": count - n} for n in range(len(listed), 0, -1)]


# Kinds whose rows have a topic whatever was loaded; any other row has one only through a task or special
# notice (the renderer skips `topic` for a batch with neither). Plain strings: compared per row.
TOPIC_KINDS: tuple[str, ...] = (MessageKind.evac_shelter.value, MessageKind.evac_release.value)


def topic(loaded: Loaded, *, row: Any, notice: Any) -> Topic | None:
    """The evacuation topic of an outbox row, or None for an ordinary warning message.

    A deputy's or the level above's message about a silent 包户责任人 stays an ordinary chase message: it is
    about the person, and its notice is not the task's.
    """
    if row.kind == MessageKind.evac_shelter:
        values = loaded.shelters.get(row.id)
        return Topic("evac_shelter", SHELTER_PATH, values, link_id=values["link_id"]) if values else None
    if row.kind == MessageKind.evac_release:
        return Topic("evac_release", ACK_PATH, {"area": loaded.areas.get(row.region_code or "", row.region_code or "")})
    if notice is None or row.kind in (MessageKind.deputy, MessageKind.escalation):
        return None
    if notice.id in loaded.tasks:
        return Topic("evacuation", TASK_PATH, loaded.tasks[notice.id])
    if notice.id in loaded.special:
        return Topic("special", ACK_PATH, loaded.special[notice.id])
    return None
