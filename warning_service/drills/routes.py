"""演练 and 号码核验: schedule, change, cancel, list with 叫应率; a number check's failures as JSON, CSV, XLSX.
Scope and roles by the one dependency; an unannounced drill is hidden below its scheduler's scope."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from warning_service.deps import DutyOfficer, NowDep, Reader, SessionDep
from warning_service.drills import results, service
from warning_service.drills.models import CheckFailure, DrillCreate, DrillKind, DrillPublic, DrillUpdate
from warning_service.errors import Invalid

router = APIRouter(prefix="/api/v1/drills", tags=["drills"])
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get("", response_model=list[DrillPublic])
async def list_drills(principal: Reader, session: SessionDep, now: NowDep, kind: DrillKind | None = None,
                      limit: Annotated[int, Query(ge=1, le=500)] = 200) -> list[DrillPublic]:
    """Runs in scope: coming ones (soonest first), then finished ones with their 叫应率."""
    rows = await service.list_drills(session, actor=principal.as_actor(), kind=kind.value if kind else None,
                                     limit=limit)
    return await service.public(session, rows, now=now)


@router.post("", response_model=DrillPublic, status_code=201)
async def schedule(body: DrillCreate, request: Request, principal: DutyOfficer, session: SessionDep,
                   now: NowDep) -> DrillPublic:
    """Schedule a drill (announced or 突击) or a number check; the worker issues it when due."""
    drill = await service.schedule(session, data=body, actor=principal.as_actor(), settings=request.app.state.settings,
                                   now=now)
    return (await service.public(session, await service.with_name(session, drill), now=now))[0]


@router.get("/{drill_id}", response_model=DrillPublic)
async def get_drill(drill_id: int, principal: Reader, session: SessionDep, now: NowDep) -> DrillPublic:
    drill = await service.get(session, drill_id=drill_id, actor=principal.as_actor())
    return (await service.public(session, await service.with_name(session, drill), now=now))[0]


@router.put("/{drill_id}", response_model=DrillPublic)
async def change(drill_id: int, body: DrillUpdate, principal: DutyOfficer, session: SessionDep,
                 now: NowDep) -> DrillPublic:
    """Change a run that is still scheduled; 409 once the worker has issued it or it was cancelled."""
    drill = await service.update(session, drill_id=drill_id, data=body, actor=principal.as_actor(), now=now)
    return (await service.public(session, await service.with_name(session, drill), now=now))[0]


@router.post("/{drill_id}/cancel", response_model=DrillPublic)
async def cancel(drill_id: int, principal: DutyOfficer, session: SessionDep, now: NowDep) -> DrillPublic:
    """Cancel before it is due (records are kept for the audit; an issued drill is lifted like a warning)."""
    drill = await service.cancel(session, drill_id=drill_id, actor=principal.as_actor(), now=now)
    return (await service.public(session, await service.with_name(session, drill), now=now))[0]


async def _failures(session, principal, drill_id: int, now) -> tuple[str, list[CheckFailure]]:
    drill = await service.get(session, drill_id=drill_id, actor=principal.as_actor())
    if drill.kind != DrillKind.number_check:
        raise Invalid("only a number check lists failed numbers", "只有号码核验才有未通过名单", field="drill_id")
    items = await results.failures(session, drill=drill, scope_path=principal.scope.path, now=now)
    return f"号码核验未通过_{drill.region_code}_{drill.due_at:%Y%m%d}", items


@router.get("/{drill_id}/failures", response_model=list[CheckFailure])
async def failures(drill_id: int, principal: Reader, session: SessionDep, now: NowDep) -> list[CheckFailure]:
    """Numbers that failed delivery, and (after the deadline) those that never answered."""
    return (await _failures(session, principal, drill_id, now))[1]


@router.get("/{drill_id}/failures.csv", response_class=Response)
async def failures_csv(drill_id: int, principal: Reader, session: SessionDep, now: NowDep) -> Response:
    name, items = await _failures(session, principal, drill_id, now)
    return Response(results.failures_csv(items), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}.csv"})


@router.get("/{drill_id}/failures.xlsx", response_class=Response)
async def failures_xlsx(drill_id: int, principal: Reader, session: SessionDep, now: NowDep) -> Response:
    name, items = await _failures(session, principal, drill_id, now)
    return Response(results.failures_xlsx(items, title=name), media_type=XLSX,
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}.xlsx"})
