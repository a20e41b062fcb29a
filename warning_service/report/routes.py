"""Reports for auditors (JSON, CSV, XLSX) and the auditors' console pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from warning_service.deps import Auditor, NowDep, SessionDep
from warning_service.errors import Invalid
from warning_service.report import export, heavy, scope, service
from warning_service.report.pages import page_router
from warning_service.report.params import check_period, parse_when
from warning_service.report.summary import RANK_LEVELS, summary

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
MAX_PERIOD_DAYS = 366
XLSX = export.XLSX_TYPE

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
    """The warning's report as CSV (UTF-8 with BOM, Chinese headers, Beijing time). Larger than
    EXPORT_DIRECT_MAX_ROWS notices: 409, request it as a background export instead."""
    scoped = await _scoped(session, principal, warning_id, region)
    await _small_enough(request, session, scoped)
    await scope.release(session)
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
    """The warning's report as an Excel workbook: 汇总, 分区统计, 叫应明细, 未叫应名单, 渠道统计. Larger
    than EXPORT_DIRECT_MAX_ROWS notices: 409, request it as a background export instead."""
    scoped = await _scoped(session, principal, warning_id, region)
    await _small_enough(request, session, scoped)
    async with scope.snapshot(request.app.state.db, releasing=session) as s:
        data = await export.workbook(s, scoped=scoped, now=now)
    return Response(content=data, media_type=XLSX, headers=export.filename(scoped, "xlsx"))


async def _small_enough(request: Request, session: Any, scoped: scope.Scoped) -> None:
    limit = request.app.state.settings.export_direct_max_rows
    n = await export.export_rows(session, scoped=scoped)
    if n > limit:
        raise export.UseExportJob(
            f"this export reads {n} notices (more than {limit} are built in the background): "
            f"POST /api/v1/reports/warnings/{scoped.warning.id}/exports",
            f"本次导出涉及 {n} 条通知(超过 {limit} 条须后台生成),请使用“导出”按钮生成后下载",
            field="warning_id", rows=n, limit=limit)


@router.get("/warnings/{warning_id}", response_model=None, response_class=Response)
async def warning_report(warning_id: int, request: Request, principal: Auditor, session: SessionDep, now: NowDep,
                         region: RegionQ = None, rollup: RollupQ = "town",
                         missing_offset: int = Query(0, ge=0), missing_limit: int = Query(50, ge=0, le=1000),
                         proxy_offset: int = Query(0, ge=0), proxy_limit: int = Query(50, ge=0, le=1000),
                         nodes_offset: int = Query(0, ge=0), nodes_limit: int = Query(2000, ge=0, le=10000)
                         ) -> Response:
    """One warning: reached, delivered, answered on time / late / by proxy / never, the rate (叫应率),
    time to answer, channels, roll-up down the hierarchy, escalations, and who is missing."""
    scoped = await _scoped(session, principal, warning_id, region)
    if rollup not in service.ROLLUP_CHOICES:
        raise Invalid(f"rollup must be one of {', '.join(service.ROLLUP_CHOICES)}",
                      f"rollup 应为 {', '.join(service.ROLLUP_CHOICES)} 之一", field="rollup")
    await scope.release(session)
    rt = request.app.state.runtime
    if heavy.offloaded(scoped.region, level=rt.settings.report_offload_level):
        # Big areas: grouped, paged and encoded in a child process; this loop only waits for the bytes.
        body = await rt.report_pool.run(heavy.report_json, heavy.ReportSpec(
            database_url=rt.db.url, warning_id=warning_id, region_code=scoped.region.code, now=now, rollup=rollup,
            missing_offset=missing_offset, missing_limit=missing_limit, proxy_offset=proxy_offset,
            proxy_limit=proxy_limit, nodes_offset=nodes_offset, nodes_limit=nodes_limit,
            heavy_read_share=rt.settings.heavy_read_share))
    else:
        async with scope.snapshot(request.app.state.db) as s:
            body = heavy.encode(await service.warning_report(
                s, scoped=scoped, now=now, rollup=rollup, missing_offset=missing_offset,
                missing_limit=missing_limit, proxy_offset=proxy_offset, proxy_limit=proxy_limit,
                nodes_offset=nodes_offset, nodes_limit=nodes_limit))
    return Response(content=body, media_type="application/json")


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
    async with scope.snapshot(request.app.state.db, releasing=session) as s:
        return await summary(s, region=area, since=since, until=until, rank_level=rank_level)


__all__ = ["router", "page_router"]
