"""转移避险 API: the registers, decisions and arrivals, 解除转移, the board and the report's exports.

Every record is reached through one scope dependency (outside the caller's region it does not exist for
them); duty officers and admins write, auditors read.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, File, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from warning_service.deps import DutyOfficer, NowDep, Reader, SessionDep
from warning_service.early_warning.models import EarlyWarning
from warning_service.errors import Invalid
from warning_service.evacuation import imports, registers, report, service
from warning_service.evacuation.models import Arrival, ReleaseIn, TaskDecision
from warning_service.ledger import service as ledger
from warning_service.region import service as regions

router = APIRouter(prefix="/api/v1/evacuation", tags=["evacuation"])
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_UPLOAD = 20 * 1024 * 1024


class ImportOut(BaseModel):
    register_name: str
    rows: int
    inserted: int
    updated: int


class Page(BaseModel):
    total: int
    items: list[dict[str, Any]]


async def warning_in_scope(warning_id: int, principal: Reader, session: SessionDep) -> EarlyWarning:
    """The warning named in the path, if it reaches the caller's scope."""
    return await service.warning_in_scope(session, warning_id=warning_id, scope_path=principal.scope.path)


async def task_in_scope(task_id: int, principal: Reader, session: SessionDep) -> service.TaskView:
    """The task named in the path, locked for a change, if its zone lies in the caller's scope."""
    return await service.get_task(session, task_id=task_id, scope_path=principal.scope.path, lock=True)


ScopedWarning = Annotated[EarlyWarning, Depends(warning_in_scope)]
ScopedTask = Annotated[service.TaskView, Depends(task_in_scope)]


def register_of(register: str, principal: Reader) -> registers.Register:
    """The register named in the path (zones, households, shelters, special_people, special_places); the
    caller is authenticated first, so an unknown name tells a stranger nothing."""
    return registers.register(register)


Register = Annotated[registers.Register, Depends(register_of)]


def _validated(reg: registers.Register, body: dict[str, Any]) -> BaseModel:
    try:
        return reg.schema.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise Invalid(
            f"{field}: {first['msg']}",
            f"字段 {field} 无效:{first['msg']}",
            field=field,
            errors=[{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()],
        ) from None


# --- registers --------------------------------------------------------------------------------------------------


@router.post("/registers/{register}/import", response_model=ImportOut)
async def import_register(
    register: str, principal: DutyOfficer, session: SessionDep, now: NowDep, file: Annotated[UploadFile, File()]
) -> ImportOut:
    """Import a register (CSV or XLSX; see the headers in the docs): all or nothing, every bad row reported."""
    reg = registers.register(register)
    raw = await file.read(MAX_UPLOAD + 1)
    if len(raw) > MAX_UPLOAD:
        raise Invalid("file larger than 20 MB", "文件超过 20 MB", field="file")
    res = await imports.import_register(
        session,
        register=reg.name,
        name=file.filename or f"{reg.name}.csv",
        raw=raw,
        scope_path=principal.scope.path,
        now=now,
    )
    await ledger.append(
        session,
        at=now,
        actor=principal.actor,
        action="evacuation.register_imported",
        subject_type="register",
        subject_id=reg.name,
        details={"file": file.filename, "rows": res.rows, "inserted": res.inserted, "updated": res.updated},
    )
    return ImportOut(register_name=reg.name, rows=res.rows, inserted=res.inserted, updated=res.updated)


@router.get("/registers/{register}", response_model=Page)
async def list_register(
    reg: Register,
    principal: Reader,
    session: SessionDep,
    region: str | None = None,
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
) -> Page:
    """Records of a register in the caller's scope (optionally one region's subtree)."""
    total, rows = await registers.list_records(
        session, reg=reg, scope_path=principal.scope.path, region_code=region, offset=offset, limit=limit
    )
    return Page(total=total, items=await registers.public(session, reg=reg, rows=rows))


@router.post("/registers/{register}", status_code=201)
async def create_record(
    reg: Register, principal: DutyOfficer, session: SessionDep, now: NowDep, body: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    """Add a zone, household, shelter, special person or special place."""
    row = await registers.create(session, reg=reg, data=_validated(reg, body), scope_path=principal.scope.path, now=now)
    await ledger.append(
        session,
        at=now,
        actor=principal.actor,
        action=f"evacuation.{reg.name}.created",
        subject_type=reg.name,
        subject_id=row.id,
        details=body,
    )
    return (await registers.public(session, reg=reg, rows=[row]))[0]


@router.get("/registers/{register}/{record_id}")
async def get_record(reg: Register, record_id: int, principal: Reader, session: SessionDep) -> dict[str, Any]:
    """One record."""
    row = await registers.get(session, reg=reg, record_id=record_id, scope_path=principal.scope.path)
    return (await registers.public(session, reg=reg, rows=[row]))[0]


@router.put("/registers/{register}/{record_id}")
async def replace_record(
    reg: Register,
    record_id: int,
    principal: DutyOfficer,
    session: SessionDep,
    now: NowDep,
    body: Annotated[dict[str, Any], Body()],
) -> dict[str, Any]:
    """Replace a record's values."""
    row = await registers.replace(
        session, reg=reg, record_id=record_id, data=_validated(reg, body), scope_path=principal.scope.path, now=now
    )
    await ledger.append(
        session,
        at=now,
        actor=principal.actor,
        action=f"evacuation.{reg.name}.updated",
        subject_type=reg.name,
        subject_id=row.id,
        details=body,
    )
    return (await registers.public(session, reg=reg, rows=[row]))[0]


@router.delete("/registers/{register}/{record_id}", status_code=204)
async def deactivate_record(
    reg: Register, record_id: int, principal: DutyOfficer, session: SessionDep, now: NowDep
) -> None:
    """Deactivate a record (kept for past warnings' records)."""
    row = await registers.deactivate(session, reg=reg, record_id=record_id, scope_path=principal.scope.path, now=now)
    await ledger.append(
        session,
        at=now,
        actor=principal.actor,
        action=f"evacuation.{reg.name}.deactivated",
        subject_type=reg.name,
        subject_id=row.id,
        details={},
    )


# --- tasks, arrivals, release ------------------------------------------------------------------------------------


def _task_out(view: service.TaskView) -> dict[str, Any]:
    t = view.task
    return {
        "id": t.id,
        "notice_id": t.notice_id,
        "warning_id": t.warning_id,
        "household_id": t.household_id,
        "household": view.household.name,
        "people": view.household.people,
        "zone_id": t.zone_id,
        "zone": view.zone.name,
        "keeper_id": view.keeper.id,
        "status": t.status,
        "status_zh": service.status_zh(t.status),
        "shelter_id": t.shelter_id,
        "people_moved": t.people_moved,
        "note": t.note,
        "arrived_people": t.arrived_people,
        "returned_early": t.returned_early,
        "released_at": t.released_at.isoformat() if t.released_at else None,
    }


@router.get("/tasks/{task_id}")
async def get_task(view: ScopedTask) -> dict[str, Any]:
    """One 转移任务."""
    return _task_out(view)


@router.post("/tasks/{task_id}/decision")
async def decide(
    view: ScopedTask, body: TaskDecision, principal: DutyOfficer, session: SessionDep, now: NowDep
) -> dict[str, Any]:
    """Record, for the 包户责任人, what happened to the household (e.g. after a phone call)."""
    await service.decide(session, view=view, data=body, actor=principal.actor, now=now)
    return _task_out(view)


@router.post("/shelters/{shelter_id}/arrivals")
async def arrival(
    shelter_id: int, body: Arrival, principal: DutyOfficer, session: SessionDep, now: NowDep
) -> dict[str, Any]:
    """The shelter's manager saw the household's people arrive."""
    task = await service.record_arrival(
        session,
        shelter_id=shelter_id,
        task_id=body.task_id,
        people=body.people,
        actor=principal.actor,
        scope_path=principal.scope.path,
        now=now,
    )
    return {"task_id": task.id, "arrived_people": task.arrived_people}


@router.post("/warnings/{warning_id}/release")
async def release(
    warning: ScopedWarning, body: ReleaseIn, principal: DutyOfficer, session: SessionDep, now: NowDep
) -> dict[str, Any]:
    """解除转移 for an area: its evacuees may go home; 包户责任人 and shelter managers are told."""
    region = await regions.get(session, code=body.region_code)
    principal.require_covers(region)
    done = await service.release(session, warning_id=warning.id, region=region, actor=principal.actor, now=now)  # type: ignore[arg-type]
    return {
        "release_id": done.release.id,
        "region_code": region.code,
        "tasks": done.tasks,
        "messages": done.messages,
        "notices_closed": done.notices_closed,
    }


# --- board and report --------------------------------------------------------------------------------------------


@router.get("/warnings/{warning_id}/board")
async def board(warning: ScopedWarning, principal: Reader, session: SessionDep, now: NowDep) -> dict[str, Any]:
    """应转移/已转移/未转移/拒绝 by town, village and zone (worst first), shelters, early returns."""
    return await report.board(session, warning=warning, scope_path=principal.scope.path, now=now)


def _filename(warning: EarlyWarning, ext: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="evacuation-{warning.id}.{ext}"'}


@router.get("/warnings/{warning_id}/report.csv", response_class=Response)
async def report_csv(warning: ScopedWarning, principal: Reader, session: SessionDep) -> Response:
    """The 转移 report's household detail, CSV."""
    data = await report.csv_export(session, warning_id=warning.id, scope_path=principal.scope.path)  # type: ignore[arg-type]
    return Response(data, media_type="text/csv; charset=utf-8", headers=_filename(warning, "csv"))


@router.get("/warnings/{warning_id}/report.xlsx", response_class=Response)
async def report_xlsx(warning: ScopedWarning, principal: Reader, session: SessionDep, now: NowDep) -> Response:
    """The 转移 report as a workbook (totals, towns, villages, zones, shelters, early returns, detail)."""
    data = await report.xlsx_export(session, warning=warning, scope_path=principal.scope.path, now=now)
    return Response(data, media_type=XLSX, headers=_filename(warning, "xlsx"))
