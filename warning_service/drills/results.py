"""What a run found: its 叫应率, and for a number check the numbers that failed or stayed silent.

A number counts as verified only if its owner answered by the deadline from the phone itself (SMS reply,
the link the SMS carried, a key press): an answer a duty officer recorded for them (代叫应) proves nothing
about the number. "Failed" means no message reached it (the provider said failed or undelivered, or the
person has no number at all); "silent" means it was not known to fail but nobody answered in time.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from sqlalchemy import and_, case, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.acknowledgment.models import Acknowledgment
from warning_service.delivery.models import OutboxMessage
from warning_service.drills.models import CheckFailure, Drill, DrillKind, DrillResult, DrillState
from warning_service.early_warning.identifiers import CHINA_TZ
from warning_service.notice.models import Notice, NoticeReason
from warning_service.person.models import ROLE_ZH, Person
from warning_service.region.models import Region
from warning_service.region.scope import Scope

N, A, OB = Notice.__table__, Acknowledgment.__table__, OutboxMessage.__table__
REACHED = ("sent", "delivered")
FAILED = ("failed", "undelivered")
REASON_ZH = {"failed": "未送达", "silent": "未回复"}
HEADER = ["姓名", "角色", "区域", "手机号码", "结果", "说明", "核验时间"]


def _n(cond: Any) -> Any:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


async def figures(session: AsyncSession, *, drills: Sequence[Drill], now: datetime) -> dict[int, DrillResult]:
    """Each issued run's figures over its primary notices that ask an answer, as the warning report counts
    them (answered = acknowledged with its answer recorded; on time = by the notice's deadline)."""
    issued = {d.warning_id: d for d in drills if d.warning_id}
    if not issued:
        return {}
    acked = and_(N.c.state == "acknowledged", N.c.acknowledged_at.is_not(None))
    on_time = and_(acked, N.c.deadline.is_not(None), N.c.acknowledged_at <= N.c.deadline)
    rows = (await session.execute(
        select(N.c.warning_id, func.count(), _n(acked), _n(on_time))
        .where(N.c.warning_id.in_(list(issued)), N.c.reason == NoticeReason.primary, N.c.requires_ack.is_(True))
        .group_by(N.c.warning_id))).all()
    out = {d.id: DrillResult() for d in issued.values()}
    for wid, req, ack, ontime in rows:
        out[issued[wid].id] = DrillResult(required=int(req), acknowledged=int(ack), on_time=int(ontime),  # type: ignore[index]
                                          rate=round(int(ack) / int(req), 4) if req else None)
    for d in issued.values():
        if d.kind == DrillKind.number_check:
            found = await failures(session, drill=d, scope_path="/", now=now)
            out[d.id] = out[d.id].model_copy(update={  # type: ignore[index]
                "failed": sum(f.reason == "failed" for f in found), "silent": sum(f.reason == "silent" for f in found)})
    return out


def _verified() -> Any:
    """The notice was answered by its owner, from the phone, by the deadline."""
    return exists().where(A.c.notice_id == N.c.id, A.c.path != "proxy", A.c.acknowledged_at <= N.c.deadline)


def _reached() -> Any:
    return exists().where(OB.c.notice_id == N.c.id, OB.c.status.in_(REACHED))


def _failure_query(*, scope_path: str) -> Any:
    # Nobody to call is recorded by the fan-out as a failed row with code no_address (early_warning/fanout.py).
    last_error = (select(case((OB.c.error_code == "no_address", "无手机号码"),
                              else_=func.coalesce(OB.c.error_message, OB.c.error_code))).where(
        OB.c.notice_id == N.c.id, OB.c.status.in_(FAILED)).order_by(OB.c.id.desc()).limit(1).scalar_subquery())
    return (select(N.c.id, N.c.deadline, Person.id.label("person_id"), Person.name, Person.role, Person.phone,
                   Region.code.label("region_code"), Region.name.label("region_name"),
                   _reached().label("reached"), last_error.label("error"))
            .join(Person, Person.id == N.c.person_id).join(Region, Region.code == N.c.region_code)
            .where(N.c.reason == NoticeReason.primary, ~_verified(), Scope(scope_path).predicate(Region.path)))


def _failure(r: Any, *, checked_at: datetime, now: datetime) -> CheckFailure | None:
    if r.reached or (r.error is None and r.phone):
        if r.deadline is not None and now < r.deadline:
            return None  # still time to answer
        reason = "silent"
        detail = f"截止 {r.deadline.astimezone(CHINA_TZ):%m-%d %H:%M} 未回复" if r.deadline else "未回复"
    else:
        reason, detail = "failed", (r.error or "无手机号码") if r.phone else "无手机号码"
    return CheckFailure(person_id=r.person_id, name=r.name, role=r.role, role_zh=ROLE_ZH.get(r.role, r.role),
                        region_code=r.region_code, region_name=r.region_name, phone=r.phone, reason=reason,
                        reason_zh=REASON_ZH[reason], detail=detail[:200], checked_at=checked_at)


async def failures(session: AsyncSession, *, drill: Drill, scope_path: str, now: datetime) -> list[CheckFailure]:
    """A number check's failed numbers (now) and silent ones (once the deadline has passed), by region."""
    if drill.warning_id is None:
        return []
    rows = (await session.execute(_failure_query(scope_path=scope_path).where(
        N.c.warning_id == drill.warning_id).order_by(Region.path, Person.id))).all()
    found = (_failure(r, checked_at=drill.due_at, now=now) for r in rows)
    return [f for f in found if f is not None]


async def roster_failures(session: AsyncSession, *, scope_path: str, now: datetime,
                          limit: int = 50) -> tuple[int, list[CheckFailure]]:
    """People whose latest finished number check failed ("号码核验未通过"), with the date of that check.

    Only the latest check counts: a number verified since drops off the list, and so does one corrected since
    (it is no longer the number that failed; the next check verifies it)."""
    D = Drill.__table__
    finished = and_(D.c.kind == DrillKind.number_check, D.c.state == DrillState.issued,
                    N.c.reason == NoticeReason.primary, N.c.deadline <= now)
    latest = (select(N.c.person_id, func.max(N.c.id).label("nid"))
              .select_from(N.join(D, D.c.warning_id == N.c.warning_id))
              .where(finished).group_by(N.c.person_id).subquery("latest"))
    # The number checked must still be the person's: one corrected since waits for the next check.
    checked = (select(OB.c.address).where(OB.c.notice_id == N.c.id, OB.c.channel == "sms")
               .order_by(OB.c.id).limit(1).scalar_subquery())
    q = (_failure_query(scope_path=scope_path).add_columns(D.c.due_at)
         .join(latest, latest.c.nid == N.c.id).join(D, D.c.warning_id == N.c.warning_id)
         .where(Person.active.is_(True), func.coalesce(checked, "") == func.coalesce(Person.phone, "")))
    total = (await session.execute(select(func.count()).select_from(q.subquery()))).scalar_one()
    rows = (await session.execute(q.order_by(Region.path, Person.id).limit(limit))).all()
    found = (_failure(r, checked_at=r.due_at, now=now) for r in rows)
    return int(total), [f for f in found if f is not None]


def _safe(v: Any) -> Any:
    """No cell may start a formula when opened in a spreadsheet."""
    return "'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v


def _row(f: CheckFailure) -> list[Any]:
    return [_safe(v) for v in (f.name, f.role_zh, f.region_name, f.phone or "", f.reason_zh, f.detail,
                               f"{f.checked_at.astimezone(CHINA_TZ):%Y-%m-%d %H:%M}")]


def failures_csv(items: Sequence[CheckFailure]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(HEADER)
    w.writerows(_row(f) for f in items)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")  # the BOM makes Excel read UTF-8


def failures_xlsx(items: Sequence[CheckFailure], *, title: str) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "号码核验未通过"
    ws.append([title])
    ws.append(HEADER)
    for f in items:
        ws.append(_row(f))
    for col, width in zip("ABCDEFG", (10, 14, 28, 16, 8, 30, 17), strict=True):
        ws.column_dimensions[col].width = width
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
