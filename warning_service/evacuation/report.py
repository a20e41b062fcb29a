"""The 转移 board and report: 应转移 / 已转移 / 未转移 / 拒绝 by zone, village and town, worst first; shelter
occupancy against capacity; households that went back before 解除转移. A few GROUP BYs over the tasks."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.early_warning.identifiers import CHINA_TZ
from warning_service.early_warning.models import HAZARD_ZH, LEVEL_ZH, EarlyWarning
from warning_service.evacuation.models import (
    MOVED_STATUSES,
    NOT_MOVED_STATUSES,
    TASK_STATUS_ZH,
    VULNERABLE_ZH,
    ZONE_KIND_ZH,
    TaskStatus,
)
from warning_service.evacuation.service import SH, H, T, Z
from warning_service.notice.models import NOTICE_STATE_ZH, Notice
from warning_service.person.models import Person
from warning_service.region.models import Region
from warning_service.region.scope import Scope

R = Region.__table__


def _n(cond: Any) -> Any:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def _people(cond: Any, col: Any) -> Any:
    return func.coalesce(func.sum(case((cond, col), else_=0)), 0)


def _measures() -> list[Any]:
    moved = T.c.status.in_(MOVED_STATUSES)
    not_moved = T.c.status.in_(NOT_MOVED_STATUSES)
    return [
        func.count().label("households"),
        func.coalesce(func.sum(H.c.people), 0).label("people"),
        _n(moved).label("moved"),
        _people(moved, func.coalesce(T.c.people_moved, H.c.people)).label("people_moved"),
        _n(not_moved).label("not_moved"),
        _people(not_moved, H.c.people).label("people_not_moved"),
        _n(T.c.status == TaskStatus.refused).label("refused"),
        _people(T.c.status == TaskStatus.refused, H.c.people).label("people_refused"),
        _n(T.c.status == TaskStatus.unreachable).label("unreachable"),
        _n(T.c.status == TaskStatus.returned).label("returned"),
        _n(T.c.returned_early.is_(True)).label("returned_early"),
        _n(T.c.released_at.is_not(None)).label("released"),
    ]


MEASURES = [
    "households",
    "people",
    "moved",
    "people_moved",
    "not_moved",
    "people_not_moved",
    "refused",
    "people_refused",
    "unreachable",
    "returned",
    "returned_early",
    "released",
]


def _scoped(warning_id: int, scope_path: str) -> Any:
    return (
        T.join(H, H.c.id == T.c.household_id).join(Z, Z.c.id == T.c.zone_id).join(R, R.c.code == Z.c.region_code)
    ), [T.c.warning_id == warning_id, Scope(scope_path).predicate(R.c.path)]


def _worst_first(row: dict[str, Any]) -> tuple[int, int, int]:
    # Those still in danger first, then refusals, then early returns: where a commander must act now.
    return (-row["people_not_moved"], -row["people_refused"], -row["returned_early"])


async def board(session: AsyncSession, *, warning: EarlyWarning, scope_path: str, now: datetime) -> dict[str, Any]:
    """The whole board for one warning inside a scope."""
    joined, where = _scoped(warning.id, scope_path)
    # One pass over the tasks, grouped by zone; villages, towns and the totals are sums of zones.
    extra = [Z.c.id, Z.c.name, Z.c.kind, Z.c.code, Z.c.region_code, Z.c.village_code, Z.c.town_code]
    rows = (
        await session.execute(select(*extra, *_measures()).select_from(joined).where(*where).group_by(*extra))
    ).all()
    zones: list[dict[str, Any]] = []
    rollup: dict[str, dict[str | None, dict[str, Any]]] = {"village": {}, "town": {}}
    totals = dict.fromkeys(MEASURES, 0)
    for r in rows:
        m = r._mapping
        counts = {k: int(m[k]) for k in MEASURES}
        zones.append(
            {
                "key": m["id"],
                **counts,
                "name": m["name"],
                "kind": m["kind"],
                "kind_zh": ZONE_KIND_ZH.get(m["kind"], m["kind"]),
                "code": m["code"],
                "region_code": m["region_code"],
            }
        )
        for by, key in (("village", m["village_code"]), ("town", m["town_code"])):
            g = rollup[by].setdefault(key, {"key": key, **dict.fromkeys(MEASURES, 0)})
            for k in MEASURES:
                g[k] += counts[k]
        for k in MEASURES:
            totals[k] += counts[k]
    groups = {"zone": zones, "village": list(rollup["village"].values()), "town": list(rollup["town"].values())}
    codes = {g["key"] for by in ("village", "town") for g in groups[by] if g["key"]}
    codes |= {g["region_code"] for g in groups["zone"]}
    names = (
        dict((await session.execute(select(R.c.code, R.c.name).where(R.c.code.in_(sorted(codes))))).all())
        if codes
        else {}
    )
    for by in ("village", "town"):
        for g in groups[by]:
            g["name"] = names.get(g["key"], g["key"] or "(未归属)")
    for g in groups["zone"]:
        g["region_name"] = names.get(g["region_code"], g["region_code"])
    for by in groups:
        groups[by].sort(key=_worst_first)
    return {
        "warning": {
            "id": warning.id,
            "title": warning.title,
            "hazard": warning.hazard,
            "level": warning.level,
            "hazard_zh": HAZARD_ZH.get(warning.hazard, warning.hazard),
            "level_zh": LEVEL_ZH.get(warning.level, warning.level),
            "state": warning.state,
        },
        "generated_at": now.isoformat(),
        "totals": totals,
        "by_town": groups["town"],
        "by_village": groups["village"],
        "by_zone": groups["zone"],
        "shelters": await shelters(session, warning_id=warning.id, scope_path=scope_path),
        "returned_early": await _flagged(session, warning_id=warning.id, scope_path=scope_path),
    }


async def shelters(session: AsyncSession, *, warning_id: int, scope_path: str) -> list[dict[str, Any]]:
    """Occupancy of each shelter in scope: people reported moved there (not yet released) against capacity, and
    those its manager counted in and out."""
    here = (T.c.warning_id == warning_id) & (T.c.status == TaskStatus.moved) & T.c.released_at.is_(None)
    occ = (
        select(
            T.c.shelter_id,
            func.sum(T.c.people_moved).label("reported"),
            func.sum(func.coalesce(T.c.arrived_people, 0)).label("arrived"),
            func.sum(func.coalesce(T.c.departed_people, 0)).label("departed"),
            func.count().label("households"),
        )
        .where(here)
        .group_by(T.c.shelter_id)
        .subquery()
    )
    rows = (
        await session.execute(
            select(
                SH.c.id,
                SH.c.code,
                SH.c.name,
                SH.c.capacity,
                SH.c.region_code,
                func.coalesce(occ.c.reported, 0),
                func.coalesce(occ.c.arrived, 0),
                func.coalesce(occ.c.households, 0),
                func.coalesce(occ.c.departed, 0),
            )
            .select_from(SH.outerjoin(occ, occ.c.shelter_id == SH.c.id).join(R, R.c.code == SH.c.region_code))
            .where(Scope(scope_path).predicate(R.c.path), (SH.c.active.is_(True)) | (occ.c.reported.is_not(None)))
        )
    ).all()
    out = [
        {
            "id": r[0],
            "code": r[1],
            "name": r[2],
            "capacity": r[3],
            "region_code": r[4],
            "reported": int(r[5]),
            "arrived": int(r[6]),
            "households": int(r[7]),
            "departed": int(r[8]),
            "present": int(r[6]) - int(r[8]),  # counted in by the shelter's manager, minus those who left
            "occupancy": round(int(r[5]) / r[3], 3) if r[3] else None,
            "over_capacity": int(r[5]) > r[3],
        }
        for r in rows
    ]
    out.sort(key=lambda s: (-(s["occupancy"] or 0), s["id"]))
    return out


async def _flagged(
    session: AsyncSession, *, warning_id: int, scope_path: str, limit: int = 500
) -> list[dict[str, Any]]:
    joined, where = _scoped(warning_id, scope_path)
    rows = (
        await session.execute(
            select(T.c.id, H.c.name, H.c.people, Z.c.name, T.c.updated_at)
            .select_from(joined)
            .where(*where, T.c.returned_early.is_(True))
            .order_by(T.c.id)
            .limit(limit)
        )
    ).all()
    return [{"task_id": r[0], "household": r[1], "people": r[2], "zone": r[3], "at": r[4].isoformat()} for r in rows]


# --- exports ----------------------------------------------------------------------------------------------------

DETAIL_HEADER = [
    "任务编号",
    "乡镇",
    "村(社区)",
    "危险区",
    "危险区类型",
    "户主",
    "人数",
    "脆弱人群",
    "包户责任人",
    "责任人电话",
    "叫应状态",
    "转移状态",
    "安置场所",
    "转移人数",
    "到达人数",
    "说明",
    "提前返回",
    "已解除转移",
]
GROUP_HEADER = [
    "名称",
    "应转移户数",
    "应转移人数",
    "已转移户数",
    "已转移人数",
    "未转移户数",
    "未转移人数",
    "拒绝户数",
    "拒绝人数",
    "联系不上户数",
    "已返回户数",
    "提前返回户数",
]
# The measures summed per group (a group is never "released" as a whole).
GROUP_KEYS = [m for m in MEASURES if m != "released"]


def _local(t: datetime | None) -> str:
    return t.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M") if t else ""


def _safe(v: Any) -> Any:
    """No cell may start a formula when opened in a spreadsheet."""
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@"):
        return "'" + v
    return v


async def detail_rows(session: AsyncSession, *, warning_id: int, scope_path: str) -> list[list[Any]]:
    joined, where = _scoped(warning_id, scope_path)
    village, town = R.alias("village"), R.alias("town")
    rows = (
        await session.execute(
            select(
                T.c.id,
                town.c.name,
                village.c.name,
                Z.c.name,
                Z.c.kind,
                H.c.name,
                H.c.people,
                H.c.vulnerable,
                Person.name,
                Person.phone,
                Notice.state,
                T.c.status,
                SH.c.name,
                T.c.people_moved,
                T.c.arrived_people,
                T.c.note,
                T.c.returned_early,
                T.c.released_at,
            )
            .select_from(
                joined.join(Person, Person.id == H.c.keeper_id)
                .join(Notice, Notice.id == T.c.notice_id)
                .outerjoin(SH, SH.c.id == T.c.shelter_id)
                .outerjoin(village, village.c.code == Z.c.village_code)
                .outerjoin(town, town.c.code == Z.c.town_code)
            )
            .where(*where)
            .order_by(town.c.name, village.c.name, Z.c.id, T.c.id)
        )
    ).all()
    return [
        [
            r[0],
            r[1] or "",
            r[2] or "",
            r[3],
            ZONE_KIND_ZH.get(r[4], r[4]),
            r[5],
            r[6],
            "、".join(VULNERABLE_ZH.get(v, v) for v in (r[7] or "").split(",") if v),
            r[8],
            r[9] or "",
            NOTICE_STATE_ZH.get(r[10], r[10]),
            TASK_STATUS_ZH.get(r[11], r[11]),
            r[12] or "",
            r[13] if r[13] is not None else "",
            r[14] if r[14] is not None else "",
            r[15] or "",
            "是" if r[16] else "",
            _local(r[17]),
        ]
        for r in rows
    ]


def group_rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    return [[g["name"], *[g[k] for k in GROUP_KEYS]] for g in items]


async def csv_export(session: AsyncSession, *, warning_id: int, scope_path: str) -> bytes:
    """The 转移 report's household detail as CSV (UTF-8 with BOM, so Excel in China opens it)."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(DETAIL_HEADER)
    for row in await detail_rows(session, warning_id=warning_id, scope_path=scope_path):
        w.writerow([_safe(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode()


async def xlsx_export(session: AsyncSession, *, warning: EarlyWarning, scope_path: str, now: datetime) -> bytes:
    """The 转移 report as a workbook: totals, towns, villages, zones, shelters, early returns, households."""
    b = await board(session, warning=warning, scope_path=scope_path, now=now)
    details = await detail_rows(session, warning_id=warning.id, scope_path=scope_path)

    def build() -> bytes:
        wb = Workbook(write_only=True)
        ws = wb.create_sheet("汇总")
        ws.append(["预警", _safe(warning.title)])
        ws.append(["统计时间", _local(now)])
        for label, key in zip(GROUP_HEADER[1:], GROUP_KEYS, strict=True):
            ws.append([label, b["totals"][key]])
        for title, key in (("乡镇", "by_town"), ("村", "by_village"), ("危险区", "by_zone")):
            sheet = wb.create_sheet(title)
            sheet.append(GROUP_HEADER)
            for row in group_rows(b[key]):
                sheet.append([_safe(v) for v in row])
        sheet = wb.create_sheet("安置场所")
        sheet.append(["安置场所", "容量", "登记转入人数", "到达人数", "户数", "使用率", "超容"])
        for s in b["shelters"]:
            sheet.append(
                [
                    _safe(s["name"]),
                    s["capacity"],
                    s["reported"],
                    s["arrived"],
                    s["households"],
                    s["occupancy"],
                    "是" if s["over_capacity"] else "",
                ]
            )
        sheet = wb.create_sheet("提前返回")
        sheet.append(["任务编号", "户主", "人数", "危险区", "时间"])
        for f in b["returned_early"]:
            sheet.append([f["task_id"], _safe(f["household"]), f["people"], _safe(f["zone"]), f["at"]])
        sheet = wb.create_sheet("转移明细")
        sheet.append(DETAIL_HEADER)
        for row in details:
            sheet.append([_safe(v) for v in row])
        bio = io.BytesIO()
        wb.save(bio)
        return bio.getvalue()

    return await asyncio.to_thread(build)
