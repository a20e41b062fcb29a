"""The duty roster: shifts CRUD and import inside the caller's scope, and who is on duty now."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, UploadFile
from pydantic import BaseModel

from warning_service.deps import DutyOfficer, NowDep, Reader, SessionDep
from warning_service.duty import service
from warning_service.duty.models import ShiftIn, ShiftPublic
from warning_service.errors import Invalid
from warning_service.ledger import service as ledger
from warning_service.region import service as regions

router = APIRouter(prefix="/api/v1/duty", tags=["duty"])
MAX_UPLOAD = 5 * 1024 * 1024


class ImportOut(BaseModel):
    rows: int
    inserted: int
    replaced: int


class OnDutyOut(BaseModel):
    region_code: str
    at: datetime
    own: ShiftPublic | None  # the region's own duty room
    nearest: ShiftPublic | None  # the room escalation would reach: this region's, or the nearest above


@router.get("/shifts", response_model=list[ShiftPublic])
async def list_shifts(principal: Reader, session: SessionDep, region: str | None = None,
                      since: datetime | None = None, until: datetime | None = None,
                      limit: int = Query(500, ge=1, le=5000)) -> list[ShiftPublic]:
    """Shifts of the duty rooms in scope (or one region) overlapping [since, until)."""
    if region:
        principal.require_covers(await regions.get(session, code=region))
    rows = await service.list_shifts(session, scope_path=principal.scope.path, region_code=region, since=since,
                                     until=until, limit=limit)
    return await service.public(session, rows)


@router.post("/shifts", response_model=ShiftPublic, status_code=201)
async def create_shift(body: ShiftIn, principal: DutyOfficer, session: SessionDep, now: NowDep) -> ShiftPublic:
    """Add a shift: 带班领导 and up to two 值班员, by person id or by name and phone."""
    principal.require_covers(await regions.get(session, code=body.region_code))
    shift = await service.create_shift(session, data=body, now=now)
    await ledger.append(session, at=now, actor=principal.actor, action="duty.shift_created", subject_type="duty_shift",
                        subject_id=shift.id, details=body.model_dump(mode="json"))
    return (await service.public(session, [shift]))[0]


@router.put("/shifts/{shift_id}", response_model=ShiftPublic)
async def replace_shift(shift_id: int, body: ShiftIn, principal: DutyOfficer, session: SessionDep,
                        now: NowDep) -> ShiftPublic:
    """Change a shift's times and seats."""
    shift = await service.get_shift(session, shift_id=shift_id)
    principal.require_covers(await regions.get(session, code=shift.region_code))
    shift = await service.replace_shift(session, shift=shift, data=body, now=now)
    await ledger.append(session, at=now, actor=principal.actor, action="duty.shift_changed", subject_type="duty_shift",
                        subject_id=shift.id, details=body.model_dump(mode="json"))
    return (await service.public(session, [shift]))[0]


@router.delete("/shifts/{shift_id}", status_code=204)
async def delete_shift(shift_id: int, principal: DutyOfficer, session: SessionDep, now: NowDep) -> None:
    """Remove a shift (its people stay on the roster)."""
    shift = await service.get_shift(session, shift_id=shift_id)
    principal.require_covers(await regions.get(session, code=shift.region_code))
    await service.delete_shift(session, shift=shift)
    await ledger.append(session, at=now, actor=principal.actor, action="duty.shift_deleted", subject_type="duty_shift",
                        subject_id=shift_id, details={"region_code": shift.region_code})


@router.post("/shifts/import", response_model=ImportOut)
async def import_shifts(file: UploadFile, principal: DutyOfficer, session: SessionDep, now: NowDep) -> ImportOut:
    """Import a CSV or XLSX roster: all or nothing, every bad row listed in `errors`."""
    raw = await file.read(MAX_UPLOAD + 1)
    if len(raw) > MAX_UPLOAD:
        raise Invalid("the file is larger than 5 MB", "文件超过 5 MB", field="file")
    result = await service.import_file(session, filename=file.filename or "upload.csv", raw=raw, now=now,
                                       scope_path=principal.scope.path)
    await ledger.append(session, at=now, actor=principal.actor, action="duty.shifts_imported", subject_type="duty",
                        subject_id=principal.scope.code, details={"file": file.filename, **result.__dict__})
    return ImportOut(**result.__dict__)


@router.get("/now", response_model=OnDutyOut)
async def on_duty_now(principal: Reader, session: SessionDep, now: NowDep, region: str,
                      at: datetime | None = None) -> OnDutyOut:
    """Who is on duty for a region now (or at `at`): its own room, and the room escalation would reach."""
    r = await regions.get(session, code=region)
    principal.require_covers(r)
    when = at or now
    own = await service.on_duty(session, region_code=region, at=when)
    room = (await service.duty_rooms(session, [region], at=when)).get(region)
    nearest = await service.get_shift(session, shift_id=room.shift_id) if room is not None else None
    pub = await service.public(session, [s for s in (own, nearest) if s is not None])
    by_id = {p.id: p for p in pub}
    return OnDutyOut(region_code=region, at=when, own=by_id.get(own.id) if own else None,  # type: ignore[arg-type]
                     nearest=by_id.get(nearest.id) if nearest else None)  # type: ignore[arg-type]
