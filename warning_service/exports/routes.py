"""Background exports of a warning's report: request one, follow its progress, download the file."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse

from warning_service.deps import Auditor, NowDep, SessionDep
from warning_service.early_warning.models import EarlyWarning
from warning_service.exports import service
from warning_service.exports.models import ExportFormat, ExportJob
from warning_service.region.models import Region
from warning_service.report import scope
from warning_service.report.export import XLSX_TYPE, filename

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

RowsQ = Annotated[str, Query(pattern="^(notices|regions|missing|feedback|proxy)$",
                             description="for csv: which rows (as the direct CSV's `rows`); ignored for xlsx")]


async def caller_job(job_id: int, principal: Auditor, session: SessionDep) -> ExportJob:
    """The caller's own export job, still inside their scope (404 for anyone else's, 403 out of scope)."""
    assert principal.user.id is not None
    return await service.own_job(session, job_id=job_id, user_id=principal.user.id, scope=principal.scope)


OwnJob = Annotated[ExportJob, Depends(caller_job)]


@router.post("/warnings/{warning_id}/exports", status_code=202)
async def request_export(warning_id: int, principal: Auditor, session: SessionDep, now: NowDep,
                         format: Annotated[ExportFormat, Query(description="xlsx (the whole workbook) or csv")]
                         = ExportFormat.xlsx,
                         rows: RowsQ = "notices",
                         region: Annotated[str | None, Query(description="narrow to this region in your scope")]
                         = None) -> dict[str, Any]:
    """Queue an export built in the background; poll `GET /exports/{id}` and download when `state` is done."""
    assert principal.user.id is not None
    area = await scope.region_param(session, code=region, scope=principal.scope)
    scoped = await scope.scoped_warning(session, warning_id=warning_id, region=area)
    job = await service.request_export(session, user_id=principal.user.id, scope=principal.scope, scoped=scoped,
                                       fmt=format, rows="all" if format is ExportFormat.xlsx else rows, now=now)
    return service.public(job)


@router.get("/exports")
async def my_exports(principal: Auditor, session: SessionDep) -> list[dict[str, Any]]:
    """Your recent exports, oldest first."""
    assert principal.user.id is not None
    return [service.public(j) for j in await service.recent(session, user_id=principal.user.id)]


@router.get("/exports/{job_id}")
async def export_status(job: OwnJob) -> dict[str, Any]:
    """An export's state and progress (rows written of rows expected), with the download link when done."""
    return service.public(job)


@router.get("/exports/{job_id}/file", response_class=FileResponse)
async def export_file(job: OwnJob, request: Request, session: SessionDep) -> FileResponse:
    """The finished file (409 while it is being built, 410 once failed or expired)."""
    path = service.file_of(job, directory=request.app.state.settings.export_dir)
    warning = await session.get(EarlyWarning, job.warning_id)
    region = await session.get(Region, job.region_code)
    assert warning is not None and region is not None  # own_job checked the region; warnings are kept
    media = XLSX_TYPE if job.format == ExportFormat.xlsx else "text/csv; charset=utf-8"
    # The request's session closes only after the response is sent: a province file takes seconds to download.
    await scope.release(session)
    return FileResponse(path, media_type=media,
                        headers=filename(scope.Scoped(warning=warning, region=region, whole=False), job.format))
