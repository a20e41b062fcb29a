"""Responsible persons: bulk import, CRUD inside a scope, and the roster-health report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.csvfile import read_table
from warning_service.dialect import bulk_upsert, chunks
from warning_service.drills import results as drill_results
from warning_service.errors import Conflict, Invalid, NotFound
from warning_service.person.models import (
    RESPONSIBLE_ROLE_BY_LEVEL,
    ROLE_ALIASES,
    ROLE_ZH,
    Person,
    PersonCreate,
    PersonUpdate,
)
from warning_service.person.phone import PhoneError, normalize_phone, valid_email
from warning_service.region import service as regions
from warning_service.region.models import Region
from warning_service.region.scope import Scope

# Column → the header spellings accepted for it (rosters come as English codes or Chinese spreadsheets).
COLUMNS: dict[str, tuple[str, ...]] = {
    "region_code": ("region_code", "区划代码", "区划编码", "行政区划代码"),
    "name": ("name", "姓名"),
    "role": ("role", "角色", "岗位", "责任人类型"),
    "phone": ("phone", "手机", "手机号码", "联系电话", "电话"),
    "email": ("email", "电子邮箱", "邮箱"),
    "title": ("title", "职务"),
    "unit": ("unit", "单位", "工作单位"),
    "backup_phone": ("backup_phone", "备用电话"),
    "deputy": ("deputy", "B岗", "B岗(姓名或电话)", "B岗（姓名或电话）"),
}
REQUIRED = ("region_code", "name", "role", "phone")
MAX_REPORTED = 500


@dataclass
class ImportResult:
    rows: int
    inserted: int
    updated: int


def role_code(value: str) -> str | None:
    """'网格员', '网格责任人' or 'grid_responsible' → 'grid_responsible'; None for anything else."""
    v = value.strip()
    if v in ROLE_ZH:
        return v
    by_zh = {zh: code for code, zh in ROLE_ZH.items()}
    return by_zh.get(v) or ROLE_ALIASES.get(v)


def valid_roles_text() -> str:
    return "、".join(f"{zh}({code})" for code, zh in ROLE_ZH.items())


async def import_csv(session: AsyncSession, *, path: Path | str, now: datetime, raw: bytes | None = None,
                     progress: Callable[[int, int], None] | None = None,
                     scope_path: str | None = None) -> ImportResult:
    """Import a roster: all or nothing, idempotent on (region, role, phone); every bad row is reported at once.

    Headers in English or Chinese (区划代码,姓名,角色,手机号码,电子邮箱,职务,单位,备用电话,B岗); roles as codes or
    Chinese names. B岗 names the deputy by name or phone, someone in the same region in the file or already
    on the roster. With `scope_path`, rows outside that subtree are bad rows."""
    name = str(path)
    rows = list(read_table(path, columns=COLUMNS, required=REQUIRED, raw=raw))
    known = {r.code: r.path for batch in chunks(sorted({r.values["region_code"] for r in rows}), 5000)
             for r in (await session.execute(select(Region.code, Region.path).where(Region.code.in_(batch)))).all()}
    errors: list[dict[str, object]] = []

    def bad(line: int, field: str, en: str, zh: str) -> None:
        errors.append({"line": line, "field": field, "message": en, "message_zh": zh})

    out: dict[tuple[str, str, str], dict[str, object]] = {}
    first_line: dict[tuple[str, str, str], int] = {}
    deputies: list[tuple[int, tuple[str, str, str], str]] = []
    for r in rows:
        v = r.values
        if v["region_code"] not in known:
            bad(r.line, "region_code", f"unknown region {v['region_code']!r}", f"区划 {v['region_code']!r} 不存在")
        elif scope_path is not None and not Scope(scope_path).covers(known[v["region_code"]]):
            bad(r.line, "region_code", f"region {v['region_code']!r} is outside your scope",
                f"区划 {v['region_code']!r} 不在您的管辖范围内")
        if not v["name"]:
            bad(r.line, "name", "must not be empty", "姓名不能为空")
        elif "\x00" in v["name"]:
            bad(r.line, "name", "contains a NUL character", "姓名含有空字符(NUL)")
        elif len(v["name"]) > 100:
            bad(r.line, "name", "longer than 100 characters", "姓名超过 100 个字符")
        role = role_code(v["role"])
        if role is None or len(v["role"]) > 40:
            # A misspelt role would be a person nobody ever reaches: refuse it, and say what is valid.
            bad(r.line, "role", f"unknown role {v['role']!r}; valid roles: {', '.join(ROLE_ZH)}",
                f"角色 {v['role']!r} 不存在,可用角色:{valid_roles_text()}")
        phone = backup = None
        try:
            phone = normalize_phone(v["phone"])
        except PhoneError as exc:
            bad(r.line, "phone", str(exc), f"手机号码无效:{v['phone']!r}")
        if v["backup_phone"]:
            try:
                backup = normalize_phone(v["backup_phone"])
            except PhoneError as exc:
                bad(r.line, "backup_phone", str(exc), f"备用电话无效:{v['backup_phone']!r}")
        email = v["email"] or None
        if email and not valid_email(email):
            bad(r.line, "email", f"not an e-mail address: {email!r}", f"电子邮箱无效:{email!r}")
        if role is None or phone is None:
            continue
        key = (v["region_code"], role, phone)
        if key in first_line:
            bad(r.line, "phone", f"same region, role and phone as line {first_line[key]}",
                f"与第 {first_line[key]} 行的区划、角色和电话重复")
            continue
        first_line[key] = r.line
        out[key] = {"region_code": v["region_code"], "name": v["name"], "role": role, "phone": phone,
                    "email": email, "title": v["title"] or None, "unit": v["unit"] or None, "backup_phone": backup,
                    "active": True, "created_at": now, "updated_at": now}
        if v["deputy"]:
            deputies.append((r.line, key, v["deputy"]))
    deputy_of = await _resolve_deputies(session, deputies, out, bad)
    if errors:
        errors.sort(key=lambda e: int(str(e["line"])))  # stable: within a line, in column order
        first = errors[0]
        raise Invalid(f"{name}: {len(errors)} problem(s); line {first['line']}, field {first['field']}: "
                      f"{first['message']}",
                      f"{name}:共 {len(errors)} 处错误;第 {first['line']} 行,字段 {first['field']}:"
                      f"{first['message_zh']}",
                      field=str(first["field"]), line=first["line"], error_count=len(errors),
                      errors=errors[:MAX_REPORTED])
    before = (await session.execute(select(func.count()).select_from(Person))).scalar_one()
    values = list(out.values())
    await bulk_upsert(session, Person.__table__, values, index_elements=["region_code", "role", "phone"],
                      update_columns=["name", "email", "title", "unit", "backup_phone", "active", "updated_at"],
                      progress=progress)
    await _link_deputies(session, deputy_of)
    # New rows are whatever the table grew by; the rest matched an existing (region, role, phone).
    inserted = (await session.execute(select(func.count()).select_from(Person))).scalar_one() - before
    return ImportResult(rows=len(values), inserted=inserted, updated=len(values) - inserted)


Key = tuple[str, str, str]


async def _resolve_deputies(session: AsyncSession, deputies: list[tuple[int, Key, str]],
                            rows: dict[Key, dict[str, object]], bad: Callable[[int, str, str, str], None]
                            ) -> dict[Key, tuple[str, str]]:
    """Each B岗 cell → the deputy's (region_code, phone): someone in the same region, in the file or on the roster."""
    if not deputies:
        return {}
    region_codes = sorted({k[0] for _, k, _ in deputies})
    existing = [(p.region_code, p.name, p.phone) for batch in chunks(region_codes, 5000) for p in (
        await session.execute(select(Person.region_code, Person.name, Person.phone).where(
            Person.region_code.in_(batch), Person.active.is_(True)))).all()]
    candidates = [(k[0], str(v["name"]), k[2]) for k, v in rows.items()] + existing
    out: dict[Key, tuple[str, str]] = {}
    for line, key, cell in deputies:
        try:
            as_phone = normalize_phone(cell)
        except PhoneError:
            as_phone = None
        found = {(region, phone) for region, nm, phone in candidates
                 if region == key[0] and phone and (phone == as_phone or nm == cell)}
        found.discard((key[0], key[2]))
        if len(found) != 1:
            why = "nobody" if not found else "more than one person"
            bad(line, "deputy", f"B岗 {cell!r} matches {why} in region {key[0]}",
                f"B岗 {cell!r} 在区划 {key[0]} 中{'找不到' if not found else '对应多人,请填写电话'}")
            continue
        out[key] = next(iter(found))
    return out


async def _link_deputies(session: AsyncSession, deputy_of: dict[Key, tuple[str, str]]) -> None:
    if not deputy_of:
        return
    by_key: dict[Key, int] = {}
    by_phone: dict[tuple[str, str], int] = {}
    for region_batch in chunks(sorted({k[0] for k in deputy_of}), 5000):
        for p in (await session.execute(select(Person.id, Person.region_code, Person.role, Person.phone).where(
                Person.region_code.in_(region_batch)))).all():
            by_key[(p.region_code, p.role, p.phone)] = p.id
            by_phone.setdefault((p.region_code, p.phone), p.id)
    for key, target in deputy_of.items():
        await session.execute(Person.__table__.update().where(Person.__table__.c.id == by_key[key]).values(
            deputy_id=by_phone[target]))


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
    person = (await session.execute(select(Person).join(Region, Region.code == Person.region_code).where(
        Person.id == person_id, Scope(scope_path).predicate(Region.path)))).scalar_one_or_none()
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
    base = select(Person).join(Region, Region.code == Person.region_code).where(Scope(path).predicate(Region.path))
    if role:
        base = base.where(Person.role == role)
    if q:
        base = base.where(or_(Person.name.contains(q), Person.phone.contains(q)))
    total = (await session.execute(select(func.count()).select_from(base.subquery()))).scalar_one()
    rows = (await session.execute(base.order_by(Person.id).offset(offset).limit(limit))).scalars().all()
    return total, list(rows)


async def roster_health(session: AsyncSession, *, scope_path: str, level: str, limit: int = 1000,
                        now: datetime | None = None) -> dict:
    """Regions of `level` with no active responsible person, people no channel can reach and, given `now`,
    people whose latest 号码核验 failed (drills/), with the date of that check."""
    role = RESPONSIBLE_ROLE_BY_LEVEL.get(level)
    has_person = select(Person.id).where(Person.region_code == Region.code, Person.active.is_(True))
    if role:
        has_person = has_person.where(Person.role == role)
    uncovered_q = select(Region.code, Region.name).where(
        Scope(scope_path).predicate(Region.path), Region.level == level, ~has_person.exists())
    uncovered_total = (await session.execute(select(func.count()).select_from(uncovered_q.subquery()))).scalar_one()
    uncovered = (await session.execute(uncovered_q.order_by(Region.code).limit(limit))).all()
    unreachable_q = select(Person.id, Person.name, Person.region_code, Person.role).join(
        Region, Region.code == Person.region_code).where(
        Scope(scope_path).predicate(Region.path), Person.active.is_(True),
        or_(Person.phone.is_(None), Person.phone == ""), or_(Person.email.is_(None), Person.email == ""))
    unreachable = (await session.execute(unreachable_q.order_by(Person.id).limit(limit))).all()
    return {
        "level": level,
        "role": role,
        "regions_without_responsible_total": uncovered_total,
        "regions_without_responsible": [{"code": r.code, "name": r.name} for r in uncovered],
        "people_without_contact": [{"id": r.id, "name": r.name, "region_code": r.region_code, "role": r.role}
                                   for r in unreachable],
        **(await _check_failures(session, scope_path=scope_path, now=now, limit=limit) if now else {}),
    }


async def _check_failures(session: AsyncSession, *, scope_path: str, now: datetime, limit: int) -> dict:
    total, failed = await drill_results.roster_failures(session, scope_path=scope_path, now=now, limit=limit)
    return {"number_check_failed_total": total,
            "number_check_failed": [f.model_dump(mode="json") for f in failed]}
