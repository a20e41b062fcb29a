"""The duty roster: shifts per region, their import, and who is on duty at a moment (Beijing time).

Escalation asks `duty_rooms` for the nearest region, at or above each silent notice's region, whose duty
room has a shift at that moment: the end of a chain is whoever sits in that room *then*, so a shift change
in the middle of a warning hands the next call to the new shift.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service import labels
from warning_service.csvfile import decode
from warning_service.dialect import chunks
from warning_service.duty.models import (
    MAX_OFFICERS,
    SEAT_ROLE,
    DutyMember,
    DutyShift,
    MemberIn,
    MemberPublic,
    Seat,
    ShiftIn,
    ShiftPublic,
)
from warning_service.errors import Conflict, Invalid, NotFound
from warning_service.person.models import Person
from warning_service.person.phone import PhoneError, normalize_phone
from warning_service.region import service as regions
from warning_service.region.models import Region
from warning_service.region.scope import Scope
from warning_service.report.params import CST

HEADER = ["region_code", "starts_at", "ends_at", "leader_name", "leader_phone", "officer1_name",
          "officer1_phone", "officer2_name", "officer2_phone", "room_phone", "note"]
MAX_SHIFT = timedelta(days=7)
MAX_ERRORS = 200  # a file wrong on every line still gets a readable answer
TIME_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y-%m-%dT%H:%M",
                "%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True)
class OnDuty:
    person_id: int
    seat: str
    region_code: str
    shift_id: int


@dataclass(frozen=True)
class DutyRoom:
    """The duty room of one region with the shift on at a moment."""

    region_code: str
    shift_id: int
    persons: tuple[OnDuty, ...]


@dataclass
class ImportResult:
    rows: int
    inserted: int
    replaced: int


# --- one shift -------------------------------------------------------------------------------------------------

def _utc(t: datetime) -> datetime:
    """Times without a zone are Beijing wall-clock times, as the offices write them."""
    return t.replace(tzinfo=CST) if t.tzinfo is None else t


def _check_span(starts_at: datetime, ends_at: datetime) -> None:
    if ends_at <= starts_at:
        raise Invalid("ends_at must be after starts_at", "交班时间必须晚于接班时间", field="ends_at")
    if ends_at - starts_at > MAX_SHIFT:
        raise Invalid("a shift may last at most 7 days", "单个班次不能超过 7 天", field="ends_at")


async def _overlapping(session: AsyncSession, *, region_code: str, starts_at: datetime, ends_at: datetime,
                       exclude: int | None = None) -> DutyShift | None:
    q = select(DutyShift).where(DutyShift.region_code == region_code, DutyShift.starts_at < ends_at,
                                DutyShift.ends_at > starts_at)
    if exclude is not None:
        q = q.where(DutyShift.id != exclude)
    return (await session.execute(q.order_by(DutyShift.starts_at).limit(1))).scalars().first()


async def _person_for(session: AsyncSession, *, region_code: str, seat: Seat, m: MemberIn, now: datetime,
                      field: str) -> int:
    """The roster person sitting this seat: by id, by phone, or a new person for a free entry."""
    if m.person_id is not None:
        p = await session.get(Person, m.person_id)
        if p is None or not p.active:
            raise Invalid(f"person {m.person_id} not found or inactive", f"人员 {m.person_id} 不存在或已停用",
                          field=field)
        return p.id  # type: ignore[return-value]
    if not m.phone:
        raise Invalid("a person_id or a phone is required", "须填写人员编号或手机号码", field=field)
    try:
        phone = normalize_phone(m.phone)
    except PhoneError:
        raise Invalid(f"not a valid phone number: {m.phone!r}", f"手机号码无效:{m.phone!r}", field=field) from None
    role = SEAT_ROLE[seat]
    found = (await session.execute(select(Person.id).where(Person.phone == phone, Person.active.is_(True))
                                   .order_by((Person.region_code == region_code).desc(), (Person.role == role).desc(),
                                             Person.id).limit(1))).scalar()
    if found is not None:
        return int(found)
    if not m.name:
        raise Invalid("a free entry needs a name", "新录入的值班人员须填写姓名", field=field)
    p = Person(region_code=region_code, name=m.name, role=role, phone=phone, active=True, created_at=now,
               updated_at=now)
    session.add(p)
    await session.flush()
    return p.id  # type: ignore[return-value]


async def _seat_members(session: AsyncSession, shift: DutyShift, data: ShiftIn, *, now: datetime) -> None:
    seats = [(Seat.leader, 0, data.leader, "leader")] + [
        (Seat.officer, i, m, f"officers.{i}") for i, m in enumerate(data.officers)]
    ids: list[int] = []
    for seat, pos, m, field in seats:
        pid = await _person_for(session, region_code=shift.region_code, seat=seat, m=m, now=now, field=field)
        if pid in ids:
            raise Invalid("the same person sits two seats of one shift", "同一班次中同一人不能重复排班", field=field)
        ids.append(pid)
        session.add(DutyMember(shift_id=shift.id, seat=seat.value, position=pos, person_id=pid))  # type: ignore[arg-type]
    await session.flush()


async def create_shift(session: AsyncSession, *, data: ShiftIn, now: datetime) -> DutyShift:
    """Add one shift; it may not overlap another shift of the same duty room."""
    await regions.get(session, code=data.region_code)
    starts, ends = _utc(data.starts_at), _utc(data.ends_at)
    _check_span(starts, ends)
    clash = await _overlapping(session, region_code=data.region_code, starts_at=starts, ends_at=ends)
    if clash is not None:
        raise Conflict(f"overlaps shift {clash.id}", f"与已有班次 {clash.id} 时间重叠", field="starts_at",
                       existing_id=clash.id)
    shift = DutyShift(region_code=data.region_code, starts_at=starts, ends_at=ends, room_phone=data.room_phone,
                      note=data.note, created_at=now, updated_at=now)
    session.add(shift)
    await session.flush()
    await _seat_members(session, shift, data, now=now)
    return shift


async def get_shift(session: AsyncSession, *, shift_id: int) -> DutyShift:
    shift = await session.get(DutyShift, shift_id)
    if shift is None:
        raise NotFound(f"shift {shift_id} not found", f"班次 {shift_id} 不存在", field="shift_id")
    return shift


async def replace_shift(session: AsyncSession, *, shift: DutyShift, data: ShiftIn, now: datetime) -> DutyShift:
    """Change a shift's span and seats (the region stays)."""
    if data.region_code != shift.region_code:
        raise Invalid("a shift cannot move to another region", "班次不能改到其他区划", field="region_code")
    starts, ends = _utc(data.starts_at), _utc(data.ends_at)
    _check_span(starts, ends)
    clash = await _overlapping(session, region_code=shift.region_code, starts_at=starts, ends_at=ends,
                               exclude=shift.id)
    if clash is not None:
        raise Conflict(f"overlaps shift {clash.id}", f"与已有班次 {clash.id} 时间重叠", field="starts_at",
                       existing_id=clash.id)
    await session.execute(delete(DutyMember).where(DutyMember.shift_id == shift.id))
    shift.starts_at, shift.ends_at, shift.room_phone, shift.note = starts, ends, data.room_phone, data.note
    shift.updated_at = now
    await session.flush()
    await _seat_members(session, shift, data, now=now)
    return shift


async def delete_shift(session: AsyncSession, *, shift: DutyShift) -> None:
    await session.execute(delete(DutyMember).where(DutyMember.shift_id == shift.id))
    await session.delete(shift)
    await session.flush()


async def public(session: AsyncSession, shifts: Sequence[DutyShift]) -> list[ShiftPublic]:
    """Shifts with their seats' names and phones, in three queries."""
    if not shifts:
        return []
    ids = [s.id for s in shifts]
    members = (await session.execute(
        select(DutyMember.shift_id, DutyMember.seat, DutyMember.person_id, Person.name, Person.phone)
        .join(Person, Person.id == DutyMember.person_id).where(DutyMember.shift_id.in_(ids))
        .order_by(DutyMember.shift_id, DutyMember.seat, DutyMember.position))).all()
    names = dict((await session.execute(select(Region.code, Region.name).where(
        Region.code.in_({s.region_code for s in shifts})))).all())
    by_shift: dict[int, list[Any]] = {}
    for m in members:
        by_shift.setdefault(m.shift_id, []).append(m)
    out = []
    for s in shifts:
        seats = [MemberPublic(seat=m.seat, seat_zh=labels.zh(labels.DUTY_SEAT, m.seat), person_id=m.person_id,
                              name=m.name, phone=m.phone) for m in by_shift.get(s.id, [])]  # type: ignore[arg-type]
        out.append(ShiftPublic(
            id=s.id, region_code=s.region_code, region_name=names.get(s.region_code, s.region_code),  # type: ignore[arg-type]
            starts_at=s.starts_at, ends_at=s.ends_at, room_phone=s.room_phone, note=s.note,
            leader=next((m for m in seats if m.seat == Seat.leader), None),
            officers=[m for m in seats if m.seat == Seat.officer]))
    return out


async def list_shifts(session: AsyncSession, *, scope_path: str, region_code: str | None = None,
                      since: datetime | None = None, until: datetime | None = None,
                      limit: int = 500) -> list[DutyShift]:
    """Shifts of duty rooms inside the scope (or one region), overlapping [since, until)."""
    q = select(DutyShift).join(Region, Region.code == DutyShift.region_code).where(Scope(scope_path).predicate(
        Region.path))
    if region_code:
        q = q.where(DutyShift.region_code == region_code)
    if since is not None:
        q = q.where(DutyShift.ends_at > since)
    if until is not None:
        q = q.where(DutyShift.starts_at < until)
    return list((await session.execute(q.order_by(DutyShift.region_code, DutyShift.starts_at).limit(limit)))
                .scalars())


# --- who is on duty --------------------------------------------------------------------------------------------

async def on_duty(session: AsyncSession, *, region_code: str, at: datetime) -> DutyShift | None:
    """The shift of this region's own duty room at `at`, if any."""
    return (await session.execute(select(DutyShift).where(
        DutyShift.region_code == region_code, DutyShift.starts_at <= at, DutyShift.ends_at > at)
        .order_by(DutyShift.starts_at.desc()).limit(1))).scalars().first()


async def duty_rooms(session: AsyncSession, region_codes: Iterable[str], *, at: datetime,
                     lowest: str | None = None) -> dict[str, DutyRoom]:
    """For each region: the nearest duty room at or above it with a shift on at `at`, with its active people.

    `lowest` (a region level) skips rooms below it (a grid or village has no duty room to speak of, but a
    roster could hold one). Three queries however many regions.
    """
    codes = sorted(set(region_codes))
    if not codes:
        return {}
    paths: dict[str, str] = {}
    for part in chunks(codes, 1000):
        paths.update(dict((await session.execute(
            select(Region.code, Region.path).where(Region.code.in_(part)))).all()))
    up = {c: list(reversed(regions.ancestor_codes(p))) for c, p in paths.items()}
    wanted = sorted({a for chain in up.values() for a in chain})
    rooms: dict[str, DutyRoom] = {}
    for part in chunks(wanted, 1000):
        q = (select(DutyShift.region_code, DutyShift.id, DutyMember.person_id, DutyMember.seat)
             .join(DutyMember, DutyMember.shift_id == DutyShift.id).join(Person, Person.id == DutyMember.person_id)
             .join(Region, Region.code == DutyShift.region_code)
             .where(DutyShift.region_code.in_(part), DutyShift.starts_at <= at, DutyShift.ends_at > at,
                    Person.active.is_(True))
             .order_by(DutyShift.region_code, DutyMember.seat, DutyMember.position))
        if lowest is not None:
            q = q.where(Region.level.in_(_levels_from(lowest)))
        for code, shift_id, pid, seat in (await session.execute(q)).all():
            room = rooms.get(code)
            person = OnDuty(pid, seat, code, shift_id)
            rooms[code] = (DutyRoom(code, shift_id, (*room.persons, person)) if room is not None
                           else DutyRoom(code, shift_id, (person,)))
    out: dict[str, DutyRoom] = {}
    for c, chain in up.items():
        room = next((rooms[a] for a in chain if a in rooms), None)
        if room is not None:
            out[c] = room
    return out


def _levels_from(lowest: str) -> list[str]:
    order = ["province", "city", "county", "town", "village", "grid"]
    return order[:order.index(lowest) + 1] if lowest in order else order


# --- import ------------------------------------------------------------------------------------------------------

def _rows_from(raw: bytes, *, filename: str) -> list[tuple[int, dict[str, Any]]]:
    """(line, values) from a CSV or the first sheet of an XLSX; the header must be HEADER exactly."""
    if filename.lower().endswith(".xlsx") or raw[:2] == b"PK":
        try:
            wb = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
        except Exception:  # noqa: BLE001 — any unreadable workbook is the same error to the user
            raise Invalid(f"{filename}: not a readable XLSX workbook", f"{filename}:不是可读取的 XLSX 文件",
                          field="file") from None
        table = [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
        wb.close()
    else:
        table = [list(r) for r in csv.reader(io.StringIO(decode(raw, filename=filename), newline=""))]
    if not table:
        raise Invalid(f"{filename}: the file is empty", f"{filename}:文件为空", field="file")
    got = [str(h or "").strip() for h in table[0]]
    while got and not got[-1]:
        got.pop()
    if got != HEADER:
        raise Invalid(f"{filename}, line 1: header must be {','.join(HEADER)} (got {','.join(got)})",
                      f"{filename} 第 1 行:表头应为 {','.join(HEADER)}(实际为 {','.join(got)})", field="header")
    out = []
    for line, values in enumerate(table[1:], start=2):
        cells = [("" if v is None else v) for v in values[:len(HEADER)]]
        cells += [""] * (len(HEADER) - len(cells))
        if all(str(v).strip() == "" for v in cells):
            continue
        out.append((line, {h: (v.strip() if isinstance(v, str) else v) for h, v in zip(HEADER, cells, strict=True)}))
    return out


def _time(v: Any) -> datetime:
    if isinstance(v, datetime):
        return _utc(v)
    s = str(v).strip()
    try:
        return _utc(datetime.fromisoformat(s))
    except ValueError:
        pass
    for fmt in TIME_FORMATS:
        try:
            return _utc(datetime.strptime(s, fmt))
        except ValueError:
            continue
    raise ValueError(s)


def _err(filename: str, line: int, field: str, en: str, zh: str) -> dict[str, Any]:
    return {"line": line, "field": field, "message": f"{filename}, line {line}, field {field}: {en}",
            "message_zh": f"{filename} 第 {line} 行,字段 {field}:{zh}"}


async def import_file(session: AsyncSession, *, filename: str | Path, raw: bytes, now: datetime,
                      scope_path: str | None = None) -> ImportResult:
    """Import shifts from CSV or XLSX: all or nothing; every bad row is reported, not just the first.

    A row with the same region and span as a saved shift replaces that shift's seats (a re-import is
    idempotent); a row overlapping any other shift of its duty room, in the file or saved, is an error.
    """
    name = Path(filename).name
    rows = _rows_from(raw, filename=name)
    paths = {c: p for part in chunks(sorted({str(v["region_code"]) for _, v in rows}), 1000)
             for c, p in (await session.execute(select(Region.code, Region.path).where(Region.code.in_(part)))).all()}
    known = set(paths)
    errors: list[dict[str, Any]] = []
    parsed: list[tuple[int, ShiftIn]] = []
    for line, v in rows:
        bad = len(errors)
        code = str(v["region_code"])
        if code not in known:
            errors.append(_err(name, line, "region_code", f"unknown region {code!r}", f"区划 {code!r} 不存在"))
        elif scope_path is not None and not Scope(scope_path).covers(paths[code]):
            errors.append(_err(name, line, "region_code", f"region {code} is outside your scope",
                               f"区划 {code} 不在您的管辖范围内"))
        times: dict[str, datetime] = {}
        for f in ("starts_at", "ends_at"):
            try:
                times[f] = _time(v[f])
            except ValueError:
                errors.append(_err(name, line, f, f"not a time like 2026-07-01 08:00: {v[f]!r}",
                                   f"时间格式应为 2026-07-01 08:00:{v[f]!r}"))
        if len(times) == 2:
            try:
                _check_span(times["starts_at"], times["ends_at"])
            except Invalid as exc:
                errors.append(_err(name, line, "ends_at", exc.message_en, exc.message_zh))
        seats: list[MemberIn] = []
        for prefix in ("leader", *(f"officer{i}" for i in range(1, MAX_OFFICERS + 1))):
            pname, phone = str(v[f"{prefix}_name"] or ""), str(v[f"{prefix}_phone"] or "")
            if prefix == "leader" and not phone:
                errors.append(_err(name, line, "leader_phone", "the shift leader's phone is required",
                                   "带班领导电话不能为空"))
                continue
            if not phone and not pname:
                continue
            try:
                phone = normalize_phone(phone)
            except PhoneError:
                errors.append(_err(name, line, f"{prefix}_phone", f"not a valid phone number: {phone!r}",
                                   f"手机号码无效:{phone!r}"))
                continue
            seats.append(MemberIn(name=pname or None, phone=phone))
        phones = [m.phone for m in seats]
        if len(set(phones)) != len(phones):
            errors.append(_err(name, line, "officer1_phone", "the same phone sits two seats",
                               "同一班次中同一电话重复"))
        if len(errors) == bad:
            parsed.append((line, ShiftIn(region_code=code, starts_at=times["starts_at"], ends_at=times["ends_at"],
                                         leader=seats[0], officers=seats[1:],
                                         room_phone=str(v["room_phone"] or "") or None,
                                         note=str(v["note"] or "") or None)))
        if len(errors) >= MAX_ERRORS:
            break
    # Overlaps inside the file, per duty room.
    by_room: dict[str, list[tuple[int, ShiftIn]]] = {}
    for line, s in parsed:
        by_room.setdefault(s.region_code, []).append((line, s))
    for items in by_room.values():
        items.sort(key=lambda x: x[1].starts_at)
        for (l1, a), (l2, b) in zip(items, items[1:], strict=False):
            if b.starts_at < a.ends_at:
                errors.append(_err(name, l2, "starts_at", f"overlaps line {l1}", f"与第 {l1} 行时间重叠"))
    # Overlaps with saved shifts (the same span is a replacement, not an overlap).
    replace: dict[int, int] = {}
    for line, s in parsed:
        q = select(DutyShift.id, DutyShift.starts_at, DutyShift.ends_at).where(
            DutyShift.region_code == s.region_code, DutyShift.starts_at < s.ends_at, DutyShift.ends_at > s.starts_at)
        for sid, st, en in (await session.execute(q)).all():
            if st == s.starts_at and en == s.ends_at:
                replace[line] = sid
            else:
                errors.append(_err(name, line, "starts_at", f"overlaps saved shift {sid}",
                                   f"与已保存的班次 {sid} 时间重叠"))
    if errors:
        errors.sort(key=lambda e: e["line"])
        first = errors[0]
        raise Invalid(f"{len(errors)} error(s); nothing imported. {first['message']}",
                      f"共 {len(errors)} 处错误,未导入任何班次。{first['message_zh']}", field=first["field"],
                      line=first["line"], errors=errors[:MAX_ERRORS])
    inserted = 0
    for line, s in parsed:
        if line in replace:
            await replace_shift(session, shift=await get_shift(session, shift_id=replace[line]), data=s, now=now)
        else:
            await create_shift(session, data=s, now=now)
            inserted += 1
    return ImportResult(rows=len(parsed), inserted=inserted, replaced=len(parsed) - inserted)

