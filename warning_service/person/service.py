"""Responsible persons: bulk import, CRUD inside a scope, and the roster-health report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.csvfile import read_rows, row_error
from warning_service.db import analyze, chunks, dialect_name, upsert
from warning_service.errors import Conflict, Invalid, NotFound
from warning_service.person.models import RESPONSIBLE_ROLE_BY_LEVEL, Person, PersonCreate, PersonUpdate
from warning_service.person.phone import PhoneError, normalize_phone, valid_email
from warning_service.region import service as regions
from warning_service.region.models import Region, subtree_bounds

HEADER = ["region_code", "name", "role", "phone", "email"]
ROLE_PATTERN = "abcdefghijklmnopqrstuvwxyz_"


@dataclass
class ImportResult:
    rows: int
    inserted: int
    updated: int


def _valid_role(role: str) -> bool:
    return bool(role) and role[0].isalpha() and all(c in ROLE_PATTERN for c in role) and len(role) <= 40


async def import_csv(session: AsyncSession, *, path: Path | str, now: datetime, raw: bytes | None = None,
                     progress: Callable[[int, int], None] | None = None) -> ImportResult:
    """Import `region_code,name,role,phone,email`: all or nothing, idempotent on (region, role, phone)."""
    name = str(path)
    rows = list(read_rows(path, header=HEADER, raw=raw))
    known = {r for batch in chunks(sorted({r.values["region_code"] for r in rows}), 5000)
             for r in (await session.execute(select(Region.code).where(Region.code.in_(batch)))).scalars()}
    out: dict[tuple[str, str, str], dict[str, object]] = {}
    first_line: dict[tuple[str, str, str], int] = {}
    for r in rows:
        v = r.values
        if v["region_code"] not in known:
            raise row_error(name, r.line, "region_code", f"unknown region {v['region_code']!r}",
                            f"区划 {v['region_code']!r} 不存在")
        if not v["name"]:
            raise row_error(name, r.line, "name", "must not be empty", "姓名不能为空")
        if len(v["name"]) > 100:
            raise row_error(name, r.line, "name", "longer than 100 characters", "姓名超过 100 个字符")
        if not _valid_role(v["role"]) or len(v["role"]) > 40:
            raise row_error(name, r.line, "role", f"{v['role']!r} is not a role name (lowercase_with_underscores)",
                            f"{v['role']!r} 不是有效的角色名")
        try:
            phone = normalize_phone(v["phone"])
        except PhoneError as exc:
            raise row_error(name, r.line, "phone", str(exc), f"手机号码无效:{v['phone']!r}") from None
        email = v["email"] or None
        if email and not valid_email(email):
            raise row_error(name, r.line, "email", f"not an e-mail address: {email!r}", f"电子邮箱无效:{email!r}")
        key = (v["region_code"], v["role"], phone)
        if key in first_line:
            raise row_error(name, r.line, "phone", f"same region, role and phone as line {first_line[key]}",
                            f"与第 {first_line[key]} 行的区划、角色和电话重复")
        first_line[key] = r.line
        out[key] = {"region_code": v["region_code"], "name": v["name"], "role": v["role"], "phone": phone,
                    "email": email, "active": True, "created_at": now, "updated_at": now}
    before = (await session.execute(select(func.count()).select_from(Person))).scalar_one()
    stmt = upsert(Person.__table__, dialect=dialect_name(session),
                  index_elements=["region_code", "role", "phone"],
                  update_columns=["name", "email", "active", "updated_at"])
    done, values = 0, list(out.values())
    for batch in chunks(values, 2000):
        await session.execute(stmt, batch)
        done += len(batch)
        if progress:
            progress(done, len(values))
    await analyze(session, "person")
    # New rows are whatever the table grew by; the rest matched an existing (region, role, phone).
    inserted = (await session.execute(select(func.count()).select_from(Person))).scalar_one() - before
    return ImportResult(rows=len(values), inserted=inserted, updated=len(values) - inserted)


def _clean_contacts(phone: str | None, email: str | None) -> tuple[str | None, str | None]:
    if phone is not None:
        try:
            phone = normalize_phone(phone)
        except PhoneError as exc:
            raise Invalid(str(exc), f"手机号码无效:{phone!r}", field="phone") from None
    if email is not None and email != "" and not valid_email(email):
        raise Invalid(f"not an e-mail address: {email!r}", f"电子邮箱无效:{email!r}", field="email")
    return phone, (email or None)


async def create(session: AsyncSession, *, data: PersonCreate, now: datetime, scope_path: str = "") -> Person:
    """Add a responsible person; phone stored as E.164; the deputy must lie in `scope_path` ("" = whole tree)."""
    await regions.get(session, code=data.region_code)
    phone, email = _clean_contacts(data.phone, data.email)
    if data.deputy_id is not None:
        await _deputy_in_scope(session, person_id=data.deputy_id, scope_path=scope_path)
    dup = (await session.execute(select(Person.id).where(
        Person.region_code == data.region_code, Person.role == data.role, Person.phone == phone))).first()
    if dup:
        raise Conflict("a person with this region, role and phone exists", "该区划已有相同角色和电话的人员",
                       field="phone", existing_id=dup[0])
    person = Person(region_code=data.region_code, name=data.name, role=data.role, phone=phone, email=email,
                    active=data.active, deputy_id=data.deputy_id, created_at=now, updated_at=now)
    session.add(person)
    await session.flush()
    return person


async def get(session: AsyncSession, *, person_id: int) -> Person:
    person = await session.get(Person, person_id)
    if person is None:
        raise NotFound(f"person {person_id} not found", f"人员 {person_id} 不存在", field="person_id")
    return person


async def _deputy_in_scope(session: AsyncSession, *, person_id: int, scope_path: str) -> Person:
    """The deputy (B岗) named by id, if the caller's scope covers them.

    A deputy gets the person's warnings by SMS, and their name and phone appear in the caller's lists, so a
    foreign one would leak another county's roster. Missing and foreign answer alike: ids reveal nothing.
    """
    low, high = subtree_bounds(scope_path)
    person = (await session.execute(select(Person).join(Region, Region.code == Person.region_code).where(
        Person.id == person_id, Region.path >= low, Region.path < high))).scalar_one_or_none()
    if person is None:
        raise NotFound(f"deputy {person_id} not found in your scope",
                       f"B 岗人员 {person_id} 不存在或不在您的管辖范围内", field="deputy_id")
    return person


async def update(session: AsyncSession, *, person: Person, data: PersonUpdate, now: datetime,
                 scope_path: str = "") -> Person:
    fields = data.model_dump(exclude_unset=True)
    if "phone" in fields or "email" in fields:
        phone, email = _clean_contacts(fields.get("phone"), fields.get("email"))
        if "phone" in fields:
            fields["phone"] = phone
        if "email" in fields:
            fields["email"] = email
    if "region_code" in fields:
        await regions.get(session, code=fields["region_code"])
    if fields.get("deputy_id") is not None:
        if fields["deputy_id"] == person.id:
            raise Invalid("a person cannot be their own deputy", "不能将本人设为 B 岗", field="deputy_id")
        await _deputy_in_scope(session, person_id=fields["deputy_id"], scope_path=scope_path)
    for k, v in fields.items():
        setattr(person, k, v)
    person.updated_at = now
    await session.flush()
    return person


async def list_people(session: AsyncSession, *, scope_path: str, region_code: str | None = None,
                      role: str | None = None, q: str | None = None, offset: int = 0,
                      limit: int = 100) -> tuple[int, list[Person]]:
    path = scope_path
    if region_code:
        path = (await regions.get(session, code=region_code)).path
    low, high = subtree_bounds(path)
    base = select(Person).join(Region, Region.code == Person.region_code).where(
        Region.path >= low, Region.path < high)
    if role:
        base = base.where(Person.role == role)
    if q:
        base = base.where(or_(Person.name.contains(q), Person.phone.contains(q)))
    total = (await session.execute(select(func.count()).select_from(base.subquery()))).scalar_one()
    rows = (await session.execute(base.order_by(Person.id).offset(offset).limit(limit))).scalars().all()
    return total, list(rows)


async def roster_health(session: AsyncSession, *, scope_path: str, level: str, limit: int = 1000) -> dict:
    """Regions of `level` with no active responsible person, and people no channel can reach."""
    role = RESPONSIBLE_ROLE_BY_LEVEL.get(level)
    low, high = subtree_bounds(scope_path)
    has_person = select(Person.id).where(Person.region_code == Region.code, Person.active.is_(True))
    if role:
        has_person = has_person.where(Person.role == role)
    uncovered_q = select(Region.code, Region.name).where(
        Region.path >= low, Region.path < high, Region.level == level, ~has_person.exists())
    uncovered_total = (await session.execute(select(func.count()).select_from(uncovered_q.subquery()))).scalar_one()
    uncovered = (await session.execute(uncovered_q.order_by(Region.code).limit(limit))).all()
    unreachable_q = select(Person.id, Person.name, Person.region_code, Person.role).join(
        Region, Region.code == Person.region_code).where(
        Region.path >= low, Region.path < high, Person.active.is_(True),
        or_(Person.phone.is_(None), Person.phone == ""), or_(Person.email.is_(None), Person.email == ""))
    unreachable = (await session.execute(unreachable_q.order_by(Person.id).limit(limit))).all()
    return {
        "level": level,
        "role": role,
        "regions_without_responsible_total": uncovered_total,
        "regions_without_responsible": [{"code": r.code, "name": r.name} for r in uncovered],
        "people_without_contact": [{"id": r.id, "name": r.name, "region_code": r.region_code, "role": r.role}
                                   for r in unreachable],
    }
