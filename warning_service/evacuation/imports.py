"""The five registers from the spreadsheets county offices keep: CSV (UTF-8 or GB18030) or XLSX.

All or nothing: every row is checked first, and a file with any bad row changes nothing and is answered with
every bad row (line, field, reason in English and Chinese) — a county's register is fixed in one pass, not
one error per upload. Rows are upserted by their `code`, so importing the same file twice changes nothing.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.csvfile import CsvRow, read_rows
from warning_service.dialect import bulk_upsert, chunks, insert
from warning_service.early_warning.models import HAZARD_ZH, LEVEL_RANK, LEVEL_ZH
from warning_service.errors import Invalid
from warning_service.evacuation.models import (
    SPECIAL_PERSON_ZH,
    SPECIAL_PLACE_ZH,
    VULNERABLE_ZH,
    ZONE_KIND_ZH,
    DangerZone,
    EvacThreshold,
    Household,
    Shelter,
    SpecialPerson,
    SpecialPlace,
    Subject,
)
from warning_service.person.models import Person
from warning_service.person.phone import PhoneError, normalize_phone
from warning_service.region.models import Region
from warning_service.region.scope import Scope

MAX_REPORTED = 1000
HEADERS = {
    "zones": ["code", "name", "kind", "region_code", "thresholds", "note"],
    "households": ["code", "zone_code", "name", "people", "phone", "vulnerable", "keeper"],
    "shelters": ["code", "name", "region_code", "capacity", "manager", "address"],
    "special_people": ["code", "name", "category", "region_code", "phone", "helper", "thresholds", "note"],
    "special_places": ["code", "name", "category", "region_code", "contact", "thresholds", "note"],
}
_HAZARD_BY_NAME = {**{v: k for k, v in HAZARD_ZH.items()}, **{k: k for k in HAZARD_ZH}}
_LEVEL_BY_NAME = {
    **{v: k for k, v in LEVEL_ZH.items()},
    **{v[0]: k for k, v in LEVEL_ZH.items()},
    **{k: k for k in LEVEL_ZH},
    "立即转移": "red",
    "准备转移": "orange",
}


def _by_name(zh: dict[str, str]) -> dict[str, str]:
    return {**{v: k for k, v in zh.items()}, **{k: k for k in zh}}


_ZONE_KIND = _by_name(ZONE_KIND_ZH) | {"海塘外": "seawall_outside", "沿海": "seawall_outside"}
_VULNERABLE = _by_name(VULNERABLE_ZH)
_PERSON_CATEGORY = _by_name(SPECIAL_PERSON_ZH)
_PLACE_CATEGORY = _by_name(SPECIAL_PLACE_ZH)


@dataclass(frozen=True)
class Problem:
    line: int
    field: str
    message: str
    message_zh: str


@dataclass
class ImportResult:
    rows: int
    inserted: int
    updated: int


@dataclass
class _Check:
    """The problems found so far in one file."""

    name: str
    problems: list[Problem] = field(default_factory=list)

    def bad(self, line: int, field_: str, en: str, zh: str) -> None:
        self.problems.append(Problem(line, field_, en, zh))

    def raise_if_any(self) -> None:
        if not self.problems:
            return
        n = len(self.problems)
        lines = len({p.line for p in self.problems})
        raise Invalid(
            f"{self.name}: {n} problems in {lines} rows; nothing was imported",
            f"{self.name}:{lines} 行共 {n} 处错误,未导入任何数据",
            field="file",
            errors=[
                {"line": p.line, "field": p.field, "message": p.message, "message_zh": p.message_zh}
                for p in self.problems[:MAX_REPORTED]
            ],
            error_count=n,
        )


# --- reading ----------------------------------------------------------------------------------------------------


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def read_table(name: str, raw: bytes, *, header: list[str]) -> list[CsvRow]:
    """Rows of a CSV or an XLSX (its first sheet), keyed by the exact header; lines count from 1 at the header."""
    if not raw.startswith(b"PK"):
        return list(read_rows(name, header=header, raw=raw))
    try:
        wb = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 — any unreadable workbook is the caller's bad input
        raise Invalid(
            f"{name}: not a readable .xlsx ({type(exc).__name__})", f"{name}:无法读取的 Excel 文件", field="file"
        ) from None
    rows = list(wb.worksheets[0].iter_rows(values_only=True))
    if not rows:
        raise Invalid(f"{name}: the file is empty", f"{name}:文件为空", field="file")
    got = [_cell(v) for v in rows[0]]
    while got and not got[-1]:
        got.pop()
    if got != header:
        raise Invalid(
            f"{name}, line 1: header must be {','.join(header)} (got {','.join(got)})",
            f"{name} 第 1 行:表头应为 {','.join(header)}(实际为 {','.join(got)})",
            field="header",
        )
    out = []
    for i, values in enumerate(rows[1:], start=2):
        cells = [_cell(v) for v in values][: len(header)]
        cells += [""] * (len(header) - len(cells))
        if any(cells):
            out.append(CsvRow(i, dict(zip(header, cells, strict=True))))
    return out


def parse_thresholds(text: str) -> dict[str, int]:
    """'山洪:红;台风:橙色' or 'mountain_torrent:red,typhoon:orange' → {hazard: lowest rank that clears}."""
    out: dict[str, int] = {}
    for part in text.replace(",", ";").replace(",", ";").replace(";", ";").split(";"):
        if not part.strip():
            continue
        hazard, sep, level = part.replace(":", ":").partition(":")
        h, lv = _HAZARD_BY_NAME.get(hazard.strip()), _LEVEL_BY_NAME.get(level.strip())
        if not sep or h is None or lv is None:
            raise ValueError(part.strip())
        out[h] = LEVEL_RANK[lv]
    if not out:
        raise ValueError(text)
    return out


def thresholds_from_api(values: dict[str, str]) -> dict[str, int]:
    """The API's {hazard: level} in the same terms (codes or Chinese names)."""
    return parse_thresholds(";".join(f"{h}:{lv}" for h, lv in values.items()))


# --- references -------------------------------------------------------------------------------------------------


async def _regions(session: AsyncSession, codes: set[str]) -> dict[str, Region]:
    out: dict[str, Region] = {}
    for part in chunks(sorted(codes), 5000):
        out.update({r.code: r for r in (await session.execute(select(Region).where(Region.code.in_(part)))).scalars()})
    return out


async def _persons(session: AsyncSession, refs: set[str]) -> tuple[dict[int, Any], dict[str, list[Any]]]:
    """Active persons named by id or by phone: (by id, by E.164 phone)."""
    ids = sorted({int(r) for r in refs if r.isdigit() and len(r) < 10})
    phones: set[str] = set()
    for r in refs:
        if not (r.isdigit() and len(r) < 10):
            try:
                phones.add(normalize_phone(r))
            except PhoneError:
                continue
    cols = (Person.id, Person.phone, Person.active, Region.path)
    by_id: dict[int, Any] = {}
    by_phone: dict[str, list[Any]] = {}
    for part in chunks(ids, 5000):
        for p in (
            await session.execute(
                select(*cols).join(Region, Region.code == Person.region_code).where(Person.id.in_(part))
            )
        ).all():
            by_id[p.id] = p
    for part in chunks(sorted(phones), 5000):
        for p in (
            await session.execute(
                select(*cols)
                .join(Region, Region.code == Person.region_code)
                .where(Person.phone.in_(part), Person.active.is_(True))
            )
        ).all():
            by_phone.setdefault(p.phone, []).append(p)
    return by_id, by_phone


def _person(
    check: _Check,
    line: int,
    field_: str,
    ref: str,
    people: tuple[dict[int, Any], dict[str, list[Any]]],
    scope: Scope,
    *,
    required: bool = True,
) -> int | None:
    """The person a row names (id or phone), active and inside the importer's scope; None after a problem."""
    if not ref:
        if required:
            check.bad(line, field_, "must name a person of the roster (id or phone)", "必须填写人员(人员编号或手机号)")
        return None
    by_id, by_phone = people
    if ref.isdigit() and len(ref) < 10:
        found = [by_id[int(ref)]] if int(ref) in by_id else []
    else:
        try:
            found = by_phone.get(normalize_phone(ref), [])
        except PhoneError:
            check.bad(
                line,
                field_,
                f"{ref!r} is neither a person id nor a phone number",
                f"{ref!r} 既不是人员编号也不是手机号",
            )
            return None
    if not found:
        check.bad(line, field_, f"no active person {ref!r} in the roster", f"人员名册中没有在岗人员 {ref!r}")
        return None
    if len({p.id for p in found}) > 1:
        check.bad(
            line,
            field_,
            f"phone {ref!r} belongs to several persons; use the person id",
            f"手机号 {ref!r} 对应多名人员,请填写人员编号",
        )
        return None
    p = found[0]
    if not p.active:
        check.bad(line, field_, f"person {ref} is not active", f"人员 {ref} 已停用")
        return None
    if not scope.covers(p.path):
        check.bad(line, field_, f"person {ref} is outside your scope", f"人员 {ref} 不在您的管辖范围内")
        return None
    return int(p.id)


def _region(check: _Check, line: int, code: str, regions: dict[str, Region], scope: Scope) -> Region | None:
    r = regions.get(code)
    if r is None:
        check.bad(line, "region_code", f"unknown region {code!r}", f"区划 {code!r} 不存在")
    elif not scope.covers(r.path):
        check.bad(line, "region_code", f"region {code} is outside your scope", f"区划 {code} 不在您的管辖范围内")
        return None
    return r


def _choice(check: _Check, line: int, field_: str, value: str, names: dict[str, str], zh: dict[str, str]) -> str:
    got = names.get(value)
    if got is None:
        check.bad(
            line,
            field_,
            f"{value!r} is not one of {', '.join(zh)}",
            f"{value!r} 不是有效取值({'、'.join(zh.values())})",
        )
        return ""
    return got


def _thresholds(check: _Check, line: int, value: str) -> dict[str, int]:
    try:
        return parse_thresholds(value)
    except ValueError as bad:
        check.bad(
            line,
            "thresholds",
            f"{str(bad)!r} is not hazard:level (e.g. 山洪:红;台风:橙)",
            f"{str(bad)!r} 不是“灾种:级别”格式(如 山洪:红;台风:橙)",
        )
        return {}


def _phone(check: _Check, line: int, value: str) -> str | None:
    if not value:
        return None
    try:
        return normalize_phone(value)
    except PhoneError as exc:
        check.bad(line, "phone", str(exc), f"手机号码无效:{value!r}")
        return None


def _unique_codes(check: _Check, rows: Sequence[CsvRow]) -> None:
    first: dict[str, int] = {}
    for r in rows:
        code = r.values["code"]
        if not code:
            check.bad(r.line, "code", "must not be empty", "编号不能为空")
        elif len(code) > 40:
            check.bad(r.line, "code", "longer than 40 characters", "编号超过 40 个字符")
        elif code in first:
            check.bad(r.line, "code", f"same code as line {first[code]}", f"与第 {first[code]} 行编号重复")
        else:
            first[code] = r.line


def _required(check: _Check, r: CsvRow, *fields: str) -> None:
    for f in fields:
        if not r.values[f]:
            check.bad(r.line, f, "must not be empty", "不能为空")


def _count(check: _Check, line: int, field_: str, value: str, *, low: int, high: int) -> int:
    if not value.isdigit() or not low <= int(value) <= high:
        check.bad(line, field_, f"must be a whole number from {low} to {high}", f"应为 {low} 到 {high} 的整数")
        return 0
    return int(value)


# --- the registers ----------------------------------------------------------------------------------------------


async def import_register(
    session: AsyncSession, *, register: str, name: str, raw: bytes, scope_path: str, now: datetime
) -> ImportResult:
    """Import one register file (see HEADERS); all or nothing."""
    if register not in HEADERS:
        raise Invalid(f"unknown register {register!r}", f"未知的台账 {register!r}", field="register")
    rows = read_table(name, raw, header=HEADERS[register])
    check, scope = _Check(name), Scope(scope_path)
    _unique_codes(check, rows)
    build: Callable[..., Any] = _BUILDERS[register]
    return await build(session, rows=rows, check=check, scope=scope, now=now)


async def _upsert(
    session: AsyncSession, table: Any, values: list[dict[str, Any]], update: list[str]
) -> tuple[int, int]:
    before = (await session.execute(select(func.count()).select_from(table))).scalar_one()
    await bulk_upsert(session, table, values, index_elements=["code"], update_columns=update)
    inserted = (await session.execute(select(func.count()).select_from(table))).scalar_one() - before
    return inserted, len(values) - inserted


async def _ids(session: AsyncSession, table: Any, codes: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in chunks(codes, 5000):
        out.update(dict((await session.execute(select(table.c.code, table.c.id).where(table.c.code.in_(part)))).all()))
    return out


async def replace_thresholds(session: AsyncSession, *, subject: Subject, by_id: dict[int, dict[str, int]]) -> None:
    """Each subject's thresholds become exactly the given ones."""
    ids = sorted(by_id)
    t = EvacThreshold.__table__
    for part in chunks(ids, 5000):
        await session.execute(delete(t).where(t.c.subject == subject.value, t.c.subject_id.in_(part)))
    rows = [
        {"subject": subject.value, "subject_id": i, "hazard": h, "min_rank": rank}
        for i in ids
        for h, rank in by_id[i].items()
    ]
    for part in chunks(rows, 2000):
        await session.execute(insert(session, t), part)


async def ancestors(session: AsyncSession, regions: Sequence[Region]) -> dict[str, tuple[str | None, str | None]]:
    """Region code → (its village, its town), either None when the region is above that level."""
    codes = {c for r in regions for c in r.path.strip("/").split("/")}
    levels = (
        dict((await session.execute(select(Region.code, Region.level).where(Region.code.in_(sorted(codes))))).all())
        if len(codes) < 30_000
        else {}
    )
    out = {}
    for r in regions:
        chain = r.path.strip("/").split("/")
        village = next((c for c in chain if levels.get(c) == "village"), None)
        town = next((c for c in chain if levels.get(c) == "town"), None)
        out[r.code] = (village, town)
    return out


async def _zones(
    session: AsyncSession, *, rows: list[CsvRow], check: _Check, scope: Scope, now: datetime
) -> ImportResult:
    regions = await _regions(session, {r.values["region_code"] for r in rows})
    values, thresholds = [], {}
    for r in rows:
        v = r.values
        _required(check, r, "name")
        kind = _choice(check, r.line, "kind", v["kind"], _ZONE_KIND, ZONE_KIND_ZH)
        region = _region(check, r.line, v["region_code"], regions, scope)
        t = _thresholds(check, r.line, v["thresholds"])
        if region is not None and kind and t and v["name"]:
            values.append(
                {
                    "code": v["code"],
                    "name": v["name"][:200],
                    "kind": kind,
                    "region_code": region.code,
                    "note": v["note"][:500] or None,
                    "active": True,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            thresholds[v["code"]] = t
    check.raise_if_any()
    up = await ancestors(session, [regions[v["region_code"]] for v in values])
    for v in values:
        v["village_code"], v["town_code"] = up[v["region_code"]]
    table = DangerZone.__table__
    inserted, updated = await _upsert(
        session,
        table,
        values,
        ["name", "kind", "region_code", "village_code", "town_code", "note", "active", "updated_at"],
    )
    ids = await _ids(session, table, list(thresholds))
    await replace_thresholds(session, subject=Subject.zone, by_id={ids[c]: t for c, t in thresholds.items()})
    return ImportResult(rows=len(values), inserted=inserted, updated=updated)


async def _households(
    session: AsyncSession, *, rows: list[CsvRow], check: _Check, scope: Scope, now: datetime
) -> ImportResult:
    zt = DangerZone.__table__
    zones: dict[str, Any] = {}
    for part in chunks(sorted({r.values["zone_code"] for r in rows}), 5000):
        for z in (
            await session.execute(
                select(zt.c.code, zt.c.id, zt.c.region_code, zt.c.active, Region.path)
                .join(Region, Region.code == zt.c.region_code)
                .where(zt.c.code.in_(part))
            )
        ).all():
            zones[z.code] = z
    people = await _persons(session, {r.values["keeper"] for r in rows})
    values = []
    for r in rows:
        v = r.values
        _required(check, r, "name")
        z = zones.get(v["zone_code"])
        if z is None:
            check.bad(
                r.line, "zone_code", f"unknown danger zone {v['zone_code']!r}", f"危险区 {v['zone_code']!r} 不存在"
            )
        elif not scope.covers(z.path):
            check.bad(
                r.line,
                "zone_code",
                f"zone {v['zone_code']} is outside your scope",
                f"危险区 {v['zone_code']} 不在您的管辖范围内",
            )
            z = None
        n = _count(check, r.line, "people", v["people"], low=1, high=200)
        phone = _phone(check, r.line, v["phone"])
        flags = []
        for f in filter(None, (x.strip() for x in v["vulnerable"].replace(",", ",").replace("、", ",").split(","))):
            got = _choice(check, r.line, "vulnerable", f, _VULNERABLE, VULNERABLE_ZH)
            if got:
                flags.append(got)
        keeper = _person(check, r.line, "keeper", v["keeper"], people, scope)
        if z is not None and n and keeper is not None and v["name"]:
            values.append(
                {
                    "code": v["code"],
                    "zone_id": z.id,
                    "region_code": z.region_code,
                    "name": v["name"][:100],
                    "people": n,
                    "phone": phone,
                    "vulnerable": ",".join(sorted(set(flags))),
                    "keeper_id": keeper,
                    "active": True,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    check.raise_if_any()
    inserted, updated = await _upsert(
        session,
        Household.__table__,
        values,
        ["zone_id", "region_code", "name", "people", "phone", "vulnerable", "keeper_id", "active", "updated_at"],
    )
    return ImportResult(rows=len(values), inserted=inserted, updated=updated)


async def _shelters(
    session: AsyncSession, *, rows: list[CsvRow], check: _Check, scope: Scope, now: datetime
) -> ImportResult:
    regions = await _regions(session, {r.values["region_code"] for r in rows})
    people = await _persons(session, {r.values["manager"] for r in rows if r.values["manager"]})
    values = []
    for r in rows:
        v = r.values
        _required(check, r, "name")
        region = _region(check, r.line, v["region_code"], regions, scope)
        cap = _count(check, r.line, "capacity", v["capacity"], low=1, high=100_000)
        manager = _person(check, r.line, "manager", v["manager"], people, scope, required=False)
        if region is not None and cap and v["name"] and (manager is not None or not v["manager"]):
            values.append(
                {
                    "code": v["code"],
                    "name": v["name"][:200],
                    "region_code": region.code,
                    "capacity": cap,
                    "manager_id": manager,
                    "address": v["address"][:300] or None,
                    "active": True,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    check.raise_if_any()
    inserted, updated = await _upsert(
        session,
        Shelter.__table__,
        values,
        ["name", "region_code", "capacity", "manager_id", "address", "active", "updated_at"],
    )
    return ImportResult(rows=len(values), inserted=inserted, updated=updated)


async def _specials(
    session: AsyncSession, *, rows: list[CsvRow], check: _Check, scope: Scope, now: datetime, place: bool
) -> ImportResult:
    regions = await _regions(session, {r.values["region_code"] for r in rows})
    who = "contact" if place else "helper"
    people = await _persons(session, {r.values[who] for r in rows})
    values, thresholds = [], {}
    names, zh = (_PLACE_CATEGORY, SPECIAL_PLACE_ZH) if place else (_PERSON_CATEGORY, SPECIAL_PERSON_ZH)
    for r in rows:
        v = r.values
        _required(check, r, "name")
        cat = _choice(check, r.line, "category", v["category"], names, zh)
        region = _region(check, r.line, v["region_code"], regions, scope)
        person = _person(check, r.line, who, v[who], people, scope)
        t = _thresholds(check, r.line, v["thresholds"])
        phone = None if place else _phone(check, r.line, v["phone"])
        if cat and region is not None and person is not None and t and v["name"]:
            row = {
                "code": v["code"],
                "name": v["name"][:200],
                "category": cat,
                "region_code": region.code,
                f"{who}_id": person,
                "note": v["note"][:500] or None,
                "active": True,
                "created_at": now,
                "updated_at": now,
            }
            if not place:
                row["phone"] = phone
            values.append(row)
            thresholds[v["code"]] = t
    check.raise_if_any()
    table = (SpecialPlace if place else SpecialPerson).__table__
    update = ["name", "category", "region_code", f"{who}_id", "note", "active", "updated_at"] + (
        [] if place else ["phone"]
    )
    inserted, updated = await _upsert(session, table, values, update)
    ids = await _ids(session, table, list(thresholds))
    await replace_thresholds(
        session, subject=Subject.place if place else Subject.person, by_id={ids[c]: t for c, t in thresholds.items()}
    )
    return ImportResult(rows=len(values), inserted=inserted, updated=updated)


async def _special_people(session: AsyncSession, **kw: Any) -> ImportResult:
    return await _specials(session, place=False, **kw)


async def _special_places(session: AsyncSession, **kw: Any) -> ImportResult:
    return await _specials(session, place=True, **kw)


_BUILDERS: dict[str, Callable[..., Any]] = {
    "zones": _zones,
    "households": _households,
    "shelters": _shelters,
    "special_people": _special_people,
    "special_places": _special_places,
}
