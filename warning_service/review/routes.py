"""复盘 of one warning for auditors: JSON and XLSX, inside the caller's scope."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from warning_service.deps import Auditor, NowDep, SessionDep
from warning_service.report import scope
from warning_service.report.export import Col, Sheet, book, local
from warning_service.review import service

router = APIRouter(prefix="/api/v1/reviews", tags=["reviews"])
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EVENT_COLUMNS = [Col("序号", lambda e: e["seq"], "int", 6), Col("时间", lambda e: e["at"], "time", 20),
                 Col("类别", lambda e: e["kind_zh"], "text", 10), Col("事项", lambda e: e["text"], "text", 60),
                 Col("人数/条数", lambda e: e["count"], "int", 10), Col("操作者", lambda e: e["actor"], "text", 18),
                 Col("依据", lambda e: e["ref"], "code", 24)]


async def build(request: Request, session: Any, principal: Any, now: datetime, warning_id: int,
                region: str | None) -> dict[str, Any]:
    area = await scope.region_param(session, code=region, scope=principal.scope)
    scoped = await scope.scoped_warning(session, warning_id=warning_id, region=area)
    async with scope.snapshot(request.app.state.db, releasing=session) as s:
        return await service.review(s, scoped=scoped, now=now)


def workbook(data: dict[str, Any], *, now: datetime) -> bytes:
    w = data["report"]["warning"]
    t = data["report"]["totals"]
    sub = (f"应叫应 {t['required']} 人,已叫应 {t['acknowledged']} 人(按时 {t['on_time']},超时 {t['late']},"
           f"代叫应 {t['proxy']}),未叫应 {t['never']} 人;导出时间 {local(now)}")
    buf = io.BytesIO()
    with book(buf, now=now) as wb:
        sheet = Sheet(wb, "复盘时间线", EVENT_COLUMNS, title=f"{w['title']} 复盘", subtitle=sub)
        for e in data["events"]:
            sheet.append(e)
        sheet.close()
    return buf.getvalue()


@router.get("/warnings/{warning_id}.xlsx", response_class=Response)
async def review_xlsx(warning_id: int, request: Request, principal: Auditor, session: SessionDep, now: NowDep,
                      region: str | None = None) -> Response:
    """The 复盘 timeline as a workbook (declared first: "{id}.xlsx" would otherwise match the JSON route)."""
    data = await build(request, session, principal, now, warning_id, region)
    name = f"复盘_{warning_id}.xlsx"
    return Response(workbook(data, now=now), media_type=XLSX,
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})


@router.get("/warnings/{warning_id}")
async def review(warning_id: int, request: Request, principal: Auditor, session: SessionDep, now: NowDep,
                 region: str | None = None) -> dict:
    """The warning's report and its one timeline: decisions one by one, the many counted per minute."""
    return await build(request, session, principal, now, warning_id, region)
