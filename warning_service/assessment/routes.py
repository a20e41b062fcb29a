"""通报 for auditors: JSON and XLSX, inside the caller's scope."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from warning_service.assessment import export, service
from warning_service.deps import Auditor, NowDep, SessionDep
from warning_service.report import scope

router = APIRouter(prefix="/api/v1/assessment", tags=["assessment"])
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PeriodQ = Annotated[str, Query(pattern="^(day|month|quarter)$", description="day, month or quarter")]
OnQ = Annotated[date | None, Query(description="a date inside the period (Beijing); default today")]


async def build(request: Request, session, principal, now, *, region: str | None, period: str, on: date | None):
    area = await scope.region_param(session, code=region, scope=principal.scope)
    per = service.period(period, on or now.astimezone(service.CST).date())
    settings = request.app.state.settings
    async with scope.snapshot(request.app.state.db, releasing=session) as s:
        return await service.tongbao(s, region=area, per=per, weights=settings.tongbao_weight_map(),
                                     list_size=settings.tongbao_list_size)


@router.get("/tongbao")
async def tongbao(request: Request, principal: Auditor, session: SessionDep, now: NowDep, region: str | None = None,
                  period: PeriodQ = "month", on: OnQ = None) -> dict:
    """Towns (villages, for a town) ranked by the configured weighted score, 红榜 and 黑榜, exercises apart."""
    return await build(request, session, principal, now, region=region, period=period, on=on)


@router.get("/tongbao.xlsx", response_class=Response)
async def tongbao_xlsx(request: Request, principal: Auditor, session: SessionDep, now: NowDep,
                       region: str | None = None, period: PeriodQ = "month", on: OnQ = None) -> Response:
    """The 通报 as a workbook: one sheet for real warnings, one for exercises."""
    report = await build(request, session, principal, now, region=region, period=period, on=on)
    name = f"通报_{report['region']['name']}_{report['period']['label']}.xlsx"
    return Response(export.workbook(report, now=now), media_type=XLSX,
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})
