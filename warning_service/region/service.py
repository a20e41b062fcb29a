"""Region hierarchy: bulk import, grids, and set-based subtree queries."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.csvfile import read_rows, row_error
from warning_service.dialect import bulk_upsert, chunks
from warning_service.errors import Invalid, NotFound
from warning_service.region.models import LEVEL_ORDER, Region
from warning_service.region.scope import Scope

HEADER = ["code", "name", "level", "parent_code"]
Progress = Callable[[int, int], None]


@dataclass
class ImportResult:
    rows: int
    inserted: int
    updated: int


async def import_csv(
    session: AsyncSession, *, path: Path | str, raw: bytes | None = None, progress: Progress | None = None
) -> ImportResult:
    """Import `code,name,level,parent_code` rows: all or nothing, idempotent, in bulk."""
    name = str(path)
    rows = list(read_rows(path, header=HEADER, raw=raw))
    seen: dict[str, int] = {}
    for r in rows:
        code, level = r.values["code"], r.values["level"]
        if not code or not code.isalnum():
            raise row_error(name, r.line, "code", "must be a non-empty alphanumeric code",
                            "区划代码不能为空且只能是字母或数字")
        if code in seen:
            raise row_error(name, r.line, "code", f"duplicate of line {seen[code]}", f"与第 {seen[code]} 行重复")
        seen[code] = r.line
        if level not in LEVEL_ORDER:
            raise row_error(name, r.line, "level", f"unknown level {level!r}; use one of {', '.join(LEVEL_ORDER)}",
                            f"未知层级 {level!r},应为 {', '.join(LEVEL_ORDER)} 之一")
        if not r.values["name"]:
            raise row_error(name, r.line, "name", "must not be empty", "名称不能为空")
        if not r.values["parent_code"] and level != "province":
            raise row_error(name, r.line, "parent_code", f"a {level} needs a parent region",
                            f"{level} 级区划必须填写上级区划代码")
    existing = await _existing(session, {r.values["code"] for r in rows} | {
        r.values["parent_code"] for r in rows if r.values["parent_code"]})
    by_code = {r.values["code"]: r for r in rows}
    paths: dict[str, tuple[str, int, str]] = {c: (e.path, e.depth, e.level) for c, e in existing.items()}
    out: list[dict[str, object]] = []
    for r in sorted(rows, key=lambda r: LEVEL_ORDER[r.values["level"]]):
        v = r.values
        parent = v["parent_code"] or None
        if parent is None:
            path, depth = f"/{v['code']}/", 0
        else:
            if parent not in paths:
                where = "in the file or the database" if parent not in by_code else "at a higher level"
                raise row_error(name, r.line, "parent_code", f"parent {parent} not found {where}",
                                f"上级区划 {parent} 不存在")
            ppath, pdepth, plevel = paths[parent]
            if LEVEL_ORDER[plevel] >= LEVEL_ORDER[v["level"]]:
                raise row_error(name, r.line, "level", f"{v['level']} cannot sit below {plevel} {parent}",
                                f"{v['level']} 不能隶属于 {plevel} {parent}")
            path, depth = f"{ppath}{v['code']}/", pdepth + 1
        old = existing.get(v["code"])
        if old is not None and old.path != path:
            raise row_error(name, r.line, "parent_code",
                            f"region {v['code']} already exists under {old.parent_code}; moving regions is not "
                            "supported by import",
                            f"区划 {v['code']} 已隶属于 {old.parent_code},导入不支持调整隶属关系")
        paths[v["code"]] = (path, depth, v["level"])
        out.append({"code": v["code"], "name": v["name"], "level": v["level"], "parent_code": parent,
                    "path": path, "depth": depth})
    await bulk_upsert(session, Region.__table__, out, index_elements=["code"], update_columns=["name"],
                      progress=progress)
    updated = len([c for c in by_code if c in existing])
    return ImportResult(rows=len(out), inserted=len(out) - updated, updated=updated)


async def _existing(session: AsyncSession, codes: set[str]) -> dict[str, Region]:
    found: dict[str, Region] = {}
    for batch in chunks(sorted(codes), 5000):
        for r in (await session.execute(select(Region).where(Region.code.in_(batch)))).scalars():
            found[r.code] = r
    return found


async def add_grids(session: AsyncSession, *, per_village: int, under: str | None = None,
                    progress: Progress | None = None) -> int:
    """Give every village (optionally under one region) `per_village` grids, codes extending the village's."""
    if not 1 <= per_village <= 99:
        raise Invalid("per_village must be between 1 and 99", "每村网格数应在 1 到 99 之间", field="per_village")
    q = select(Region.code, Region.name, Region.path, Region.depth).where(Region.level == "village")
    if under:
        root = await get(session, code=under)
        q = q.where(Scope(root.path).predicate(Region.path))
    villages = (await session.execute(q.order_by(Region.code))).all()
    rows = [
        {"code": f"{v.code}{i:02d}", "name": f"{v.name}第{i}网格", "level": "grid", "parent_code": v.code,
         "path": f"{v.path}{v.code}{i:02d}/", "depth": v.depth + 1}
        for v in villages for i in range(1, per_village + 1)
    ]
    await bulk_upsert(session, Region.__table__, rows, index_elements=["code"], batch=5000, progress=progress)
    return len(rows)


async def get(session: AsyncSession, *, code: str) -> Region:
    region = await session.get(Region, code)
    if region is None:
        raise NotFound(f"region {code} not found", f"区划 {code} 不存在", field="region")
    return region


def descendants_query(path: str, *, levels: Sequence[str] | None = None, include_self: bool = True):
    """SELECT of regions in the subtree at `path`: one index range scan, no recursion."""
    q = select(Region).where(Scope(path).predicate(Region.path))
    if not include_self:
        q = q.where(Region.path != path)
    if levels:
        q = q.where(Region.level.in_(list(levels)))
    return q


async def descendants(session: AsyncSession, *, code: str, levels: Sequence[str] | None = None,
                      limit: int | None = None) -> list[Region]:
    root = await get(session, code=code)
    q = descendants_query(root.path, levels=levels).order_by(Region.path)
    if limit:
        q = q.limit(limit)
    return list((await session.execute(q)).scalars())


async def count_descendants(session: AsyncSession, *, code: str, levels: Sequence[str] | None = None) -> int:
    root = await get(session, code=code)
    q = select(func.count()).select_from(Region).where(Scope(root.path).predicate(Region.path))
    if levels:
        q = q.where(Region.level.in_(list(levels)))
    return (await session.execute(q)).scalar_one()


def ancestor_codes(path: str) -> list[str]:
    """Codes from the root down to the region itself."""
    return [p for p in path.split("/") if p]


async def children(session: AsyncSession, *, code: str | None) -> list[Region]:
    q = select(Region).where(Region.parent_code == code if code else Region.parent_code.is_(None))
    return list((await session.execute(q.order_by(Region.code))).scalars())


async def region_paths(session: AsyncSession, codes: Sequence[str]) -> dict[str, str]:
    """Human-readable paths (浙江省/台州市/温岭市/…) for many regions in two queries."""
    regions = await _existing(session, set(codes))
    all_codes = {c for r in regions.values() for c in ancestor_codes(r.path)}
    names = {c: r.name for c, r in (await _existing(session, all_codes)).items()}
    return {c: "/".join(names.get(a, a) for a in ancestor_codes(r.path)) for c, r in regions.items()}


async def search(session: AsyncSession, *, scope_path: str, q: str, limit: int = 20) -> list[Region]:
    """Regions inside the scope whose Chinese name contains `q`, widest first (a town before its villages)."""
    stmt = (select(Region).where(Scope(scope_path).predicate(Region.path), Region.name.contains(q, autoescape=True))
            .order_by(Region.depth, Region.path).limit(limit))
    return list((await session.execute(stmt)).scalars())
