"""Across warnings: rates by hazard, level, region and role for a period, exercises and tests apart."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.dialect import chunks
from warning_service.dialect import name as dialect_name
from warning_service.early_warning.models import HAZARD_ZH, LEVEL_RANK, LEVEL_ZH, EarlyWarning
from warning_service.errors import Invalid
from warning_service.person.models import ROLE_ZH
from warning_service.region.models import LEVEL_ORDER, Region
from warning_service.report import queries as q
from warning_service.report.queries import Counts
from warning_service.report.service import STATUS_ZH

EW = EarlyWarning.__table__
RANK_LEVELS = ("county", "town", "village")
STATUSES = ("actual", "exercise", "test")


async def summary(session: AsyncSession, *, region: Region, since: datetime, until: datetime,
                  rank_level: str = "town") -> dict[str, Any]:
    """Primary notices of warnings issued in [since, until) to people inside `region`, grouped."""
    if rank_level not in RANK_LEVELS:
        raise Invalid(f"rank_level must be one of {', '.join(RANK_LEVELS)}",
                      f"rank_level 应为 {', '.join(RANK_LEVELS)} 之一", field="rank_level")
    if LEVEL_ORDER.get(region.level, 0) > LEVEL_ORDER[rank_level]:
        raise Invalid(f"a {region.level} cannot be ranked by {rank_level}",
                      f"{region.name} 无法按{rank_level}排名", field="rank_level")
    await q.tune(session)
    depths = await q.level_depths(session, (rank_level,), under=region.path)
    rows = q.notice_rows(
        dialect=dialect_name(session), scope_path=region.path, ack_deadline=None, chain=True, depths=depths,
        where=[q.N.c.reason == "primary", q.N.c.warning_id == EW.c.id, EW.c.issued_at >= since,
               EW.c.issued_at < until],
        extra=[EW.c.status.label("w_status"), EW.c.hazard.label("w_hazard"), EW.c.level.label("w_level")],
    )
    dims = {"all": ("w_status",), "hazard": ("w_status", "w_hazard"), "level": ("w_status", "w_level"),
            "role": ("w_status", "role"), "region": ("w_status", f"at_{rank_level}"),
            "warning": ("w_status", "warning_id")}
    grouped: dict[str, dict[str, dict[Any, Counts]]] = {s: {d: {} for d in dims} for s in STATUSES}
    for dim, key, values in await q.grouped_counts(session, rows, dims):
        status, value = key[0], (key[1] if len(key) > 1 else "")
        if value is not None:
            grouped.setdefault(status, {d: {} for d in dims})[dim][value] = Counts.from_values(values)
    regions = await _regions(session, {k for g in grouped.values() for k in g["region"]})
    warnings = await _warnings(session, {k for g in grouped.values() for k in g["warning"]})
    return {
        "period": {"from": since, "to": until},
        "region": {"code": region.code, "name": region.name, "level": region.level, "path": region.path},
        "rank_level": rank_level,
        "statuses": {s: _section(s, g, regions, warnings) for s, g in grouped.items()},
    }


def _section(status: str, g: dict[str, dict[str, Counts]], regions: dict[str, Any],
             warnings: dict[int, Any]) -> dict[str, Any]:
    def rows(dim: str, label: str, names: dict[str, str] | None = None) -> list[dict[str, Any]]:
        return [{label: k, f"{label}_zh": (names or {}).get(k, k), **v.as_dict()} for k, v in g[dim].items()]

    by_region = []
    for code, v in g["region"].items():
        r = regions.get(code)
        by_region.append({"code": code, "name": r.name if r else code, "path": r.path if r else "",
                          "parent_code": r.parent_code if r else None, **v.as_dict()})
    # Worst first: the lowest rate, then the most people never answering; regions with nobody required last.
    by_region.sort(key=lambda x: (x["rate"] is None, x["rate"] or 0.0, -x["never"], x["path"]))
    for i, x in enumerate(by_region, 1):
        x["rank"] = i
    listed = []
    for wid, v in g["warning"].items():
        w = warnings.get(int(wid))
        listed.append({"id": int(wid), "title": w.title if w else "", "hazard": w.hazard if w else None,
                       "level": w.level if w else None, "issued_at": w.issued_at if w else None,
                       **v.as_dict()})
    listed.sort(key=lambda x: x["issued_at"] or datetime.min, reverse=True)
    totals = g["all"].get("", Counts())
    return {
        "status_zh": STATUS_ZH.get(status, status), "warnings": len(listed), "totals": totals.as_dict(),
        "by_hazard": sorted(rows("hazard", "hazard", HAZARD_ZH), key=lambda x: -x["required"]),
        "by_level": sorted(rows("level", "level", LEVEL_ZH), key=lambda x: -LEVEL_RANK.get(x["level"], 0)),
        "by_role": sorted(rows("role", "role", ROLE_ZH), key=lambda x: -x["required"]),
        "by_region": by_region,
        "warnings_list": listed,
    }


async def _regions(session: AsyncSession, codes: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for batch in chunks(sorted(codes), 2000):
        for r in (await session.execute(select(Region.code, Region.name, Region.path, Region.parent_code)
                                        .where(Region.code.in_(batch)))).all():
            out[r.code] = r
    return out


async def _warnings(session: AsyncSession, ids: set[int]) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for batch in chunks(sorted(ids), 2000):
        for w in (await session.execute(select(EW.c.id, EW.c.title, EW.c.hazard, EW.c.level, EW.c.issued_at)
                                        .where(EW.c.id.in_(batch)))).all():
            out[w.id] = w
    return out
