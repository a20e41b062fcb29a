"""Reports for auditors (JSON, CSV, XLSX) and the auditors' console pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from warning_service.deps import Auditor, NowDep, SessionDep
from warning_service.report import export, scope, service
from warning_service.report.pages import page_router
from warning_service.report.params import check_period, parse_when
from warning_service.report.summary import RANK_LEVELS, summary

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
MAX_PERIOD_DAYS = 366
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

RegionQ = Annotated[str | None, Query(description="narrow to this region inside your scope")]
RowsQ = Annotated[str, Query(pattern="^(notices|regions|missing|feedback|proxy)$",
                             description="notices: one row per person (叫应明细, with answer, proxy and "
                                         "feedback); regions: one row per region of the roll-up; missing: "
                                         "only those who never answered; feedback: 响应反馈 sums per region; "
                                         "proxy: every proxy answer with method and note")]
RollupQ = Annotated[str, Query(description="deepest roll-up level: none, county, town, village, grid")]
FromQ = Annotated[str | None, Query(alias="from", description="date or ISO time (Beijing); default -30 days")]
ToQ = Annotated[str | None, Query(description="date (inclusive) or ISO time (Beijing); default now")]
RankQ = Annotated[str, Query(description=f"rank regions by: {', '.join(RANK_LEVELS)}")]


async def _scoped(session: Any, principal: Any, warning_id: int, region: str | None) -> scope.Scoped:
    area = await scope.region_param(session, code=region, scope=principal.scope)
    return await scope.scoped_warning(session, warning_id=warning_id, region=area)


@router.get("/warnings/{warning_id}.csv", response_class=StreamingResponse)
async def warning_csv(warning_id: int, request: Request, principal: Auditor, session: SessionDep, now: NowDep,
                      region: RegionQ = None, rows: RowsQ = "notices") -> StreamingResponse:
    """The warning's report as CSV (UTF-8 with BOM, Chinese headers, Beijing time)."""
    scoped = await _scoped(session, principal, warning_id, region)
    db = request.app.state.db

    async def body() -> AsyncIterator[bytes]:
        # The stream outlives the request's session, so it reads through its own, in one snapshot.
        async with scope.snapshot(db) as s:
            async for chunk in export.csv_chunks(s, scoped=scoped, rows=rows, now=now):
                yield chunk

    return StreamingResponse(body(), media_type="text/csv; charset=utf-8",
                             headers=export.filename(scoped, "csv"))


@router.get("/warnings/{warning_id}.xlsx", response_class=Response)
async def warning_xlsx(warning_id: int, request: Request, principal: Auditor, session: SessionDep, now: NowDep,
                       region: RegionQ = None) -> Response:
    """The warning's report as an Excel workbook: 汇总, 分区统计, 叫应明细, 未叫应名单, 渠道统计."""
    scoped = await _scoped(session, principal, warning_id, region)
    async with scope.snapshot(request.app.state.db) as s:
        data = await export.workbook(s, scoped=scoped, now=now)
    return Response(content=data, media_type=XLSX, headers=export.filename(scoped, "xlsx"))


@router.get("/warnings/{warning_id}")
async def warning_report(warning_id: int, request: Request, principal: Auditor, session: SessionDep, now: NowDep,
                         region: RegionQ = None, rollup: RollupQ = "town",
                         missing_offset: int = Query(0, ge=0), missing_limit: int = Query(50, ge=0, le=1000),
                         proxy_offset: int = Query(0, ge=0), proxy_limit: int = Query(50, ge=0, le=1000),
                         nodes_offset: int = Query(0, ge=0), nodes_limit: int = Query(2000, ge=0, le=10000)
                         ) -> dict[str, Any]:
    """One warning: reached, delivered, answered on time / late / by proxy / never, the rate (叫应率),
    time to answer, channels, roll-up down the hierarchy, escalations, and who is missing."""
    scoped = await _scoped(session, principal, warning_id, region)
    async with scope.snapshot(request.app.state.db) as s:
        return await service.warning_report(s, scoped=scoped, now=now, rollup=rollup,
                                            missing_offset=missing_offset, missing_limit=missing_limit,
                                            proxy_offset=proxy_offset, proxy_limit=proxy_limit,
                                            nodes_offset=nodes_offset, nodes_limit=nodes_limit)


@router.get("/regions")
async def search_regions(principal: Auditor, session: SessionDep,
                         q: Annotated[str, Query(min_length=1, max_length=50,
                                                 description="part of a region's name, or a code prefix")],
                         limit: Annotated[int, Query(ge=1, le=50)] = 20) -> list[dict[str, Any]]:
    """Regions inside your scope whose name contains `q`: what the reports' region filter offers."""
    return await scope.search_regions(session, scope=principal.scope, text=q, limit=limit)


@router.get("/summary")
async def report_summary(request: Request, principal: Auditor, session: SessionDep, now: NowDep,
                         from_: FromQ = None, to: ToQ = None, region: RegionQ = None,
                         rank_level: RankQ = "town") -> dict[str, Any]:
    """Warnings issued in a period: rates by hazard, level, role and region (worst first), with actual
    warnings, exercises and tests counted apart."""
    # Up to and including this instant.
    until = parse_when(to, field="to", end_of_day=True) or now + timedelta(microseconds=1)
    since = parse_when(from_, field="from") or until - timedelta(days=30)
    check_period(since, until, max_days=MAX_PERIOD_DAYS)
    area = await scope.region_param(session, code=region, scope=principal.scope)
    async with scope.snapshot(request.app.state.db) as s:
        return await summary(s, region=area, since=since, until=until, rank_level=rank_level)


__all__ = ["router", "page_router"]
