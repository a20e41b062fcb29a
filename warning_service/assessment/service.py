"""通报 and 考核: towns ranked by a weighted score over a day, a month or a quarter, with 红榜 and 黑榜.

The counts are the summary report's (report/summary.py: the same primary notices, the same `Counts`), so a
town's figures here add up to what the per-warning reports say; only the feedback rate is counted here,
over the same notice rows. The score of a town is 100 × Σ weight × indicator ÷ Σ weight over the
indicators it has (a town with nothing answered has no proxy share or feedback rate to be judged on):

    answer   = 叫应率           acknowledged ÷ required
    on_time  = 按时叫应率       answered by the deadline ÷ required
    proxy    = 1 − 代叫应占比   a town whose duty officers answer for everyone has not reached its people
    feedback = 反馈率           acknowledged notices with a 响应反馈 ÷ acknowledged
    evacuation = 转移完成率     转移任务 moved (已转移, 投亲靠友) ÷ 转移任务, as the evacuation board counts them

A town with no 转移任务 in the period has no evacuation rate: it is scored on the other indicators, their
weights renormalised, so a town is never penalised for having had nobody to move.

Exercises (演练) are ranked apart and never mix into the real figures; tests are left out.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, case, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.acknowledgment.models import Feedback
from warning_service.dialect import name as dialect_name
from warning_service.early_warning.models import EarlyWarning
from warning_service.errors import Invalid
from warning_service.evacuation.models import MOVED_STATUSES
from warning_service.evacuation.service import H, T, Z
from warning_service.region.models import Region
from warning_service.region.scope import Scope
from warning_service.report import queries as q
from warning_service.report.params import CST
from warning_service.report.summary import summary

EW = EarlyWarning.__table__
FB = Feedback.__table__
RT = Region.__table__
PERIODS = {"day": "日", "month": "月", "quarter": "季度"}
INDICATOR_ZH = {"answer": "叫应率", "on_time": "按时叫应率", "proxy": "非代叫应占比", "feedback": "反馈率",
                "evacuation": "转移完成率"}
SECTIONS = ("actual", "exercise")


@dataclass(frozen=True)
class Period:
    kind: str
    since: datetime
    until: datetime
    label: str


def period(kind: str, on: date) -> Period:
    """The Beijing-time day, month or quarter containing `on`."""
    if kind == "day":
        start, end = on, on + timedelta(days=1)
        label = f"{on.year}年{on.month}月{on.day}日"
    elif kind == "month":
        start = on.replace(day=1)
        end = start + timedelta(days=calendar.monthrange(on.year, on.month)[1])
        label = f"{on.year}年{on.month}月"
    elif kind == "quarter":
        qn = (on.month - 1) // 3
        start = date(on.year, qn * 3 + 1, 1)
        end = date(on.year + 1, 1, 1) if qn == 3 else date(on.year, qn * 3 + 4, 1)
        label = f"{on.year}年第{qn + 1}季度"
    else:
        raise Invalid("period must be day, month or quarter", "通报周期应为 day、month 或 quarter", field="period")
    return Period(kind, datetime.combine(start, time(0), tzinfo=CST), datetime.combine(end, time(0), tzinfo=CST),
                  label)


def score(row: dict[str, Any], weights: dict[str, float]) -> tuple[float | None, dict[str, float | None]]:
    """The town's indicators and its weighted score (None when it had nothing to answer)."""
    ack = row["acknowledged"]
    ind: dict[str, float | None] = {
        "answer": row["rate"], "on_time": row["on_time_rate"],
        "proxy": round(1 - row["proxy"] / ack, 4) if ack else None,
        "feedback": round(row["feedback_given"] / ack, 4) if ack else None,
        "evacuation": round(row["evac_moved"] / row["evac_households"], 4) if row.get("evac_households") else None,
    }
    used = [(weights[k], v) for k, v in ind.items() if weights.get(k) and v is not None]
    total = sum(w for w, _ in used)
    return (round(100 * sum(w * v for w, v in used) / total, 2) if total else None), ind


async def _feedback(session: AsyncSession, *, region: Region, since: datetime, until: datetime,
                    rank_level: str) -> dict[tuple[str, str], int]:
    """(status, town) → answered primary notices with a 响应反馈, over the summary's own notice rows."""
    depths = await q.level_depths(session, (rank_level,), under=region.path)
    rows = q.notice_rows(
        dialect=dialect_name(session), scope_path=region.path, ack_deadline=None, chain=True, depths=depths,
        where=[q.N.c.reason == "primary", q.N.c.warning_id == EW.c.id, EW.c.issued_at >= since,
               EW.c.issued_at < until],
        extra=[EW.c.status.label("w_status"), exists().where(FB.c.notice_id == q.N.c.id).label("fb")],
    ).subquery("c")
    at = rows.c[f"at_{rank_level}"]
    stmt = (select(rows.c.w_status, at, func.count().filter(and_(rows.c.req, rows.c.acked, rows.c.fb)))
            .group_by(rows.c.w_status, at))
    return {(s, code): int(n) for s, code, n in (await session.execute(stmt)).all() if code is not None}


async def _evacuation(session: AsyncSession, *, region: Region, since: datetime, until: datetime,
                      rank_level: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(status, town) → (转移任务, moved) over the warnings issued in the period: the evacuation board's own
    joins and measures (evacuation/report.py), grouped by the zone's town (village, for a town's 通报)."""
    at = Z.c.town_code if rank_level == "town" else Z.c.village_code
    joined = (T.join(H, H.c.id == T.c.household_id).join(Z, Z.c.id == T.c.zone_id)
              .join(RT, RT.c.code == Z.c.region_code).join(EW, EW.c.id == T.c.warning_id))
    moved = func.coalesce(func.sum(case((T.c.status.in_(MOVED_STATUSES), 1), else_=0)), 0)
    stmt = (select(EW.c.status, at, func.count(), moved).select_from(joined)
            .where(Scope(region.path).predicate(RT.c.path), EW.c.issued_at >= since, EW.c.issued_at < until)
            .group_by(EW.c.status, at))
    return {(st, code): (int(n), int(m)) for st, code, n, m in (await session.execute(stmt)).all() if code}


async def tongbao(session: AsyncSession, *, region: Region, per: Period, weights: dict[str, float],
                  list_size: int = 3) -> dict[str, Any]:
    """The 通报 of `region` for `per`: towns (villages, for a town) scored and ranked, 红榜 and 黑榜."""
    rank = "town" if region.level in ("province", "city", "county") else "village"
    if region.level in ("village", "grid"):
        raise Invalid("a 通报 ranks towns or villages: choose a county or a town", "通报须按县或乡镇生成",
                      field="region")
    data = await summary(session, region=region, since=per.since, until=per.until, rank_level=rank)
    fb = await _feedback(session, region=region, since=per.since, until=per.until, rank_level=rank)
    evac = await _evacuation(session, region=region, since=per.since, until=per.until, rank_level=rank)
    sections: dict[str, Any] = {}
    for status in SECTIONS:
        sec = data["statuses"][status]
        rows = []
        for r in sec["by_region"]:
            row = {k: r[k] for k in ("code", "name", "recipients", "required", "acknowledged", "on_time", "late",
                                     "proxy", "never", "timed_out", "rate", "on_time_rate")}
            row["feedback_given"] = fb.get((status, r["code"]), 0)
            row["evac_households"], row["evac_moved"] = evac.get((status, r["code"]), (0, 0))
            row["score"], row["indicators"] = score(row, weights)
            rows.append(row)
        rows.sort(key=lambda x: (x["score"] is None, -(x["score"] or 0), x["code"]))
        scored = [r for r in rows if r["score"] is not None]
        for i, r in enumerate(rows, 1):
            r["rank"] = i if r["score"] is not None else None
        red = scored[:list_size]
        black = [r for r in reversed(scored) if r not in red][:list_size]
        sections[status] = {"status_zh": sec["status_zh"], "warnings": sec["warnings"], "totals": sec["totals"],
                            "feedback_given": sum(r["feedback_given"] for r in rows), "towns": rows,
                            "evac_households": sum(r["evac_households"] for r in rows),
                            "evac_moved": sum(r["evac_moved"] for r in rows),
                            "red": red, "black": black, "warnings_list": sec["warnings_list"]}
    total_w = sum(weights.values())
    return {"region": data["region"], "rank_level": rank, "period": {"kind": per.kind, "label": per.label,
                                                                     "from": per.since, "to": per.until},
            "weights": {k: {"weight": v, "share": round(v / total_w, 4), "zh": INDICATOR_ZH[k]}
                        for k, v in weights.items()},
            "sections": sections}
