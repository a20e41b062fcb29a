"""CRUD of the five registers inside the caller's scope, written once over a small description of each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.early_warning.models import LEVEL_RANK
from warning_service.errors import Conflict, Invalid, NotFound
from warning_service.evacuation import imports
from warning_service.evacuation.models import (
    DangerZone,
    EvacThreshold,
    Household,
    HouseholdIn,
    Shelter,
    ShelterIn,
    SpecialPerson,
    SpecialPersonIn,
    SpecialPlace,
    SpecialPlaceIn,
    Subject,
    ZoneIn,
)
from warning_service.person.models import Person
from warning_service.person.phone import PhoneError, normalize_phone
from warning_service.region.models import Region
from warning_service.region.scope import Scope

RANK_LEVEL = {v: k for k, v in LEVEL_RANK.items()}


@dataclass(frozen=True)
class Register:
    name: str
    zh: str
    model: Any
    schema: type[BaseModel]
    subject: Subject | None  # has thresholds
    persons: tuple[str, ...]  # fields naming a person of the roster
    optional_persons: tuple[str, ...] = ()


REGISTERS = {
    r.name: r
    for r in (
        Register("zones", "危险区", DangerZone, ZoneIn, Subject.zone, ()),
        Register("households", "转移对象", Household, HouseholdIn, None, ("keeper_id",)),
        Register("shelters", "避灾安置场所", Shelter, ShelterIn, None, ("manager_id",), ("manager_id",)),
        Register("special_people", "特殊人群", SpecialPerson, SpecialPersonIn, Subject.person, ("helper_id",)),
        Register("special_places", "特殊场所", SpecialPlace, SpecialPlaceIn, Subject.place, ("contact_id",)),
    )
}


def register(name: str) -> Register:
    if name not in REGISTERS:
        raise NotFound(f"unknown register {name!r}", f"未知的台账 {name!r}", field="register")
    return REGISTERS[name]


async def _region_in_scope(session: AsyncSession, code: str, scope: Scope) -> Region:
    region = await session.get(Region, code)
    if region is None:
        raise Invalid(f"unknown region {code!r}", f"区划 {code!r} 不存在", field="region_code")
    if not scope.covers(region.path):
        raise Invalid(f"region {code} is outside your scope", f"区划 {code} 不在您的管辖范围内", field="region_code")
    return region


async def _person_in_scope(session: AsyncSession, field: str, person_id: int, scope: Scope) -> None:
    row = (
        await session.execute(
            select(Person.active, Region.path)
            .join(Region, Region.code == Person.region_code)
            .where(Person.id == person_id)
        )
    ).first()
    if row is None or not row.active or not scope.covers(row.path):
        raise Invalid(
            f"no active person {person_id} in your scope", f"您的管辖范围内没有在岗人员 {person_id}", field=field
        )


async def _values(session: AsyncSession, reg: Register, data: BaseModel, scope: Scope) -> dict[str, Any]:
    values = data.model_dump(exclude={"thresholds"})
    for f in reg.persons:
        if values.get(f) is None and f in reg.optional_persons:
            continue
        await _person_in_scope(session, f, values[f], scope)
    if reg.model is Household:
        zone = await session.get(DangerZone, values["zone_id"])
        if zone is None:
            raise Invalid(
                f"unknown danger zone {values['zone_id']}", f"危险区 {values['zone_id']} 不存在", field="zone_id"
            )
        await _region_in_scope(session, zone.region_code, scope)
        values["region_code"] = zone.region_code
        values["vulnerable"] = ",".join(sorted({v.value for v in values["vulnerable"]}))
    else:
        region = await _region_in_scope(session, values["region_code"], scope)
        if reg.model is DangerZone:
            values["village_code"], values["town_code"] = (await imports.ancestors(session, [region]))[region.code]
    for enum_field in ("kind", "category"):
        if enum_field in values:
            values[enum_field] = str(
                values[enum_field].value if hasattr(values[enum_field], "value") else values[enum_field]
            )
    if "phone" in values and values["phone"]:
        try:
            values["phone"] = normalize_phone(values["phone"])
        except PhoneError as exc:
            raise Invalid(str(exc), f"手机号码无效:{values['phone']!r}", field="phone") from None
    return values


def _thresholds(data: BaseModel) -> dict[str, int]:
    try:
        return imports.thresholds_from_api(data.thresholds)  # type: ignore[attr-defined]
    except ValueError as bad:
        raise Invalid(
            f"{str(bad)!r} is not hazard:level", f"{str(bad)!r} 不是有效的“灾种:级别”", field="thresholds"
        ) from None


async def create(session: AsyncSession, *, reg: Register, data: BaseModel, scope_path: str, now: datetime) -> Any:
    """Add a record; its code must be new."""
    scope = Scope(scope_path)
    values = await _values(session, reg, data, scope)
    thresholds = _thresholds(data) if reg.subject else None
    if (await session.execute(select(reg.model.id).where(reg.model.code == values["code"]))).first():
        raise Conflict(
            f"{reg.name} code {values['code']} exists", f"{reg.zh}编号 {values['code']} 已存在", field="code"
        )
    row = reg.model(**values, created_at=now, updated_at=now)
    session.add(row)
    await session.flush()
    if reg.subject and thresholds:
        await imports.replace_thresholds(session, subject=reg.subject, by_id={row.id: thresholds})
    return row


async def get(session: AsyncSession, *, reg: Register, record_id: int, scope_path: str) -> Any:
    row = await session.get(reg.model, record_id)
    if row is not None:
        region = await session.get(Region, row.region_code)
        if region is not None and Scope(scope_path).covers(region.path):
            return row
    raise NotFound(f"{reg.name} {record_id} not found", f"{reg.zh} {record_id} 不存在", field="id")


async def replace(
    session: AsyncSession, *, reg: Register, record_id: int, data: BaseModel, scope_path: str, now: datetime
) -> Any:
    """Overwrite a record with new values (its code may not collide with another's)."""
    row = await get(session, reg=reg, record_id=record_id, scope_path=scope_path)
    values = await _values(session, reg, data, Scope(scope_path))
    thresholds = _thresholds(data) if reg.subject else None
    clash = (
        await session.execute(select(reg.model.id).where(reg.model.code == values["code"], reg.model.id != record_id))
    ).first()
    if clash:
        raise Conflict(
            f"{reg.name} code {values['code']} exists", f"{reg.zh}编号 {values['code']} 已存在", field="code"
        )
    for k, v in values.items():
        setattr(row, k, v)
    row.active, row.updated_at = True, now
    await session.flush()
    if reg.subject and thresholds:
        await imports.replace_thresholds(session, subject=reg.subject, by_id={row.id: thresholds})
    return row


async def deactivate(session: AsyncSession, *, reg: Register, record_id: int, scope_path: str, now: datetime) -> Any:
    """Stop a record being reached (kept for the record of past warnings)."""
    row = await get(session, reg=reg, record_id=record_id, scope_path=scope_path)
    row.active, row.updated_at = False, now
    await session.flush()
    return row


async def list_records(
    session: AsyncSession,
    *,
    reg: Register,
    scope_path: str,
    region_code: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[Any]]:
    path = scope_path
    if region_code:
        path = (await _region_in_scope(session, region_code, Scope(scope_path))).path
    base = (
        select(reg.model).join(Region, Region.code == reg.model.region_code).where(Scope(path).predicate(Region.path))
    )
    total = (await session.execute(select(func.count()).select_from(base.subquery()))).scalar_one()
    rows = (await session.execute(base.order_by(reg.model.id).offset(offset).limit(limit))).scalars().all()
    return total, list(rows)


async def public(session: AsyncSession, *, reg: Register, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Records as the API shows them, thresholds as {hazard: level}."""
    out = [r.model_dump(mode="json") for r in rows]
    if reg.subject and rows:
        th: dict[int, dict[str, str]] = {}
        for sid, hazard, rank in (
            await session.execute(
                select(EvacThreshold.subject_id, EvacThreshold.hazard, EvacThreshold.min_rank).where(
                    EvacThreshold.subject == reg.subject.value, EvacThreshold.subject_id.in_([r.id for r in rows])
                )
            )
        ).all():
            th.setdefault(sid, {})[hazard] = RANK_LEVEL[rank]
        for o in out:
            o["thresholds"] = th.get(o["id"], {})
    for o in out:
        if "vulnerable" in o:
            o["vulnerable"] = [v for v in o["vulnerable"].split(",") if v]
    return out
