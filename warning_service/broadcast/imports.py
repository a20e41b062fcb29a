"""The terminal register from a county's spreadsheet (CSV in UTF-8 or GB18030, or XLSX), all or nothing.

Every row is checked first; a file with any bad row changes nothing and is answered with every problem (line,
field, reason in English and Chinese), as the evacuation registers do. Rows are upserted by `code`, so the
same file imported twice changes nothing. Headers may be English or Chinese, in any order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.broadcast.models import Terminal
from warning_service.broadcast.service import TERMINAL_LEVELS
from warning_service.csvfile import CsvRow, read_table, xlsx_as_csv
from warning_service.dialect import bulk_upsert, chunks
from warning_service.evacuation.imports import _Check as Check
from warning_service.evacuation.imports import ancestors
from warning_service.region.models import Region
from warning_service.region.scope import Scope

COLUMNS: dict[str, tuple[str, ...]] = {
    "code": ("code", "终端编号"),
    "name": ("name", "终端名称"),
    "region_code": ("region_code", "区划代码"),
    "platform_id": ("platform_id", "平台终端编号"),
    "online": ("online", "在线状态"),
    "note": ("note", "备注"),
}
REQUIRED = ("code", "name", "region_code", "platform_id")
LIMITS = {"code": 40, "name": 100, "region_code": 32, "platform_id": 64, "online": 8, "note": 500}
ONLINE = {"": True, "在线": True, "online": True, "1": True, "true": True, "是": True,
          "离线": False, "offline": False, "0": False, "false": False, "否": False}


@dataclass
class ImportResult:
    rows: int
    inserted: int
    updated: int


def rows_of(name: str, raw: bytes) -> list[CsvRow]:
    csv = xlsx_as_csv(raw, filename=name) if raw.startswith(b"PK") else raw
    return list(read_table(name, columns=COLUMNS, required=REQUIRED, raw=csv))


async def import_terminals(session: AsyncSession, *, name: str, raw: bytes, scope_path: str,
                           now: datetime) -> ImportResult:
    rows = rows_of(name, raw)
    check, scope = Check(name), Scope(scope_path)
    regions = await _regions(session, {r.values["region_code"] for r in rows})
    taken = await _platform_ids(session, {r.values["platform_id"] for r in rows})
    first_code: dict[str, int] = {}
    first_pid: dict[str, int] = {}
    values: list[dict[str, Any]] = []
    for r in rows:
        v = r.values
        if not _sane(check, r):
            continue
        ok = True
        for f in REQUIRED:
            if not v[f]:
                check.bad(r.line, f, "must not be empty", "不能为空")
                ok = False
        if v["code"] in first_code:
            check.bad(r.line, "code", f"same code as line {first_code[v['code']]}",
                      f"与第 {first_code[v['code']]} 行终端编号重复")
            ok = False
        elif v["code"]:
            first_code[v["code"]] = r.line
        if v["platform_id"] in first_pid:
            check.bad(r.line, "platform_id", f"same platform id as line {first_pid[v['platform_id']]}",
                      f"与第 {first_pid[v['platform_id']]} 行平台终端编号重复")
            ok = False
        elif v["platform_id"]:
            first_pid[v["platform_id"]] = r.line
            owner = taken.get(v["platform_id"])
            if owner is not None and owner != v["code"]:
                check.bad(r.line, "platform_id", f"platform id {v['platform_id']} belongs to terminal {owner}",
                          f"平台终端编号 {v['platform_id']} 已登记给终端 {owner}")
                ok = False
        online = ONLINE.get(v["online"].lower())
        if online is None:
            check.bad(r.line, "online", f"{v['online']!r} is not 在线 or 离线", f"{v['online']!r} 不是“在线”或“离线”")
            ok = False
        region = _region(check, r.line, v["region_code"], regions, scope) if v["region_code"] else None
        if ok and region is not None:
            values.append({"code": v["code"], "name": v["name"], "region_code": region.code,
                           "platform_id": v["platform_id"], "online": online, "note": v["note"] or None,
                           "active": True, "created_at": now, "updated_at": now})
    check.raise_if_any()
    up = await ancestors(session, [regions[v["region_code"]] for v in values])
    for v in values:
        v["village_code"], v["town_code"] = up[v["region_code"]]
    table = Terminal.__table__
    before = (await session.execute(select(func.count()).select_from(table))).scalar_one()
    await bulk_upsert(session, table, values, index_elements=["code"],
                      update_columns=["name", "region_code", "village_code", "town_code", "platform_id", "online",
                                      "note", "active", "updated_at"])
    inserted = (await session.execute(select(func.count()).select_from(table))).scalar_one() - before
    return ImportResult(rows=len(values), inserted=inserted, updated=len(values) - inserted)


def _sane(check: Check, r: CsvRow) -> bool:
    ok = True
    for f, limit in LIMITS.items():
        value = r.values[f]
        if "\x00" in value:
            check.bad(r.line, f, "NUL character", "含有空字符 (NUL)")
            ok = False
        elif len(value) > limit:
            check.bad(r.line, f, f"longer than {limit} characters", f"超过 {limit} 个字符")
            ok = False
    return ok


def _region(check: Check, line: int, code: str, regions: dict[str, Region], scope: Scope) -> Region | None:
    region = regions.get(code)
    if region is None:
        check.bad(line, "region_code", f"unknown region {code!r}", f"区划 {code!r} 不存在")
    elif not scope.covers(region.path):
        check.bad(line, "region_code", f"region {code} is outside your scope", f"区划 {code} 不在您的管辖范围内")
    elif region.level not in TERMINAL_LEVELS:
        check.bad(line, "region_code", f"region {code} is a {region.level}: a terminal belongs to a village",
                  f"区划 {code} 不是村(社区)或网格:广播终端须登记到村")
    else:
        return region
    return None


async def _regions(session: AsyncSession, codes: set[str]) -> dict[str, Region]:
    out: dict[str, Region] = {}
    for part in chunks(sorted(codes), 5000):
        out.update({r.code: r for r in (await session.execute(select(Region).where(Region.code.in_(part)))).scalars()})
    return out


async def _platform_ids(session: AsyncSession, ids: set[str]) -> dict[str, str]:
    """Platform id → the code of the terminal already holding it."""
    out: dict[str, str] = {}
    for part in chunks(sorted(ids), 5000):
        out.update(dict((await session.execute(select(Terminal.platform_id, Terminal.code)
                                                .where(Terminal.platform_id.in_(part)))).all()))
    return out
