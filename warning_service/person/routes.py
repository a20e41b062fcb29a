"""Responsible persons: CRUD and roster health, inside the caller's scope."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile
from pydantic import BaseModel

from warning_service.csvfile import xlsx_as_csv
from warning_service.deps import DutyOfficer, NowDep, Reader, SessionDep
from warning_service.errors import Invalid
from warning_service.ledger import service as ledger
from warning_service.person import service
from warning_service.person.models import PersonCreate, PersonPublic, PersonUpdate
from warning_service.region import service as regions

router = APIRouter(prefix="/api/v1/people", tags=["people"])
MAX_UPLOAD = 20 * 1024 * 1024


class PersonPage(BaseModel):
    total: int
    items: list[PersonPublic]


def _public(p) -> PersonPublic:
    return PersonPublic.model_validate(p, from_attributes=True)


@router.get("", response_model=PersonPage)
async def list_people(principal: Reader, session: SessionDep, region: str | None = None,
                      role: str | None = None, q: str | None = None, offset: int = Query(0, ge=0),
                      limit: int = Query(100, ge=1, le=1000)) -> PersonPage:
    """People in the caller's scope, filtered by region subtree, role or name/phone."""
    if region:
        principal.require_covers(await regions.get(session, code=region))
    total, rows = await service.list_people(session, scope_path=principal.scope.path, region_code=region,
                                            role=role, q=q, offset=offset, limit=limit)
    return PersonPage(total=total, items=[_public(p) for p in rows])


@router.post("", response_model=PersonPublic, status_code=201)
async def create_person(body: PersonCreate, principal: DutyOfficer, session: SessionDep, now: NowDep
                        ) -> PersonPublic:
    """Add a responsible person to a region in scope."""
    principal.require_covers(await regions.get(session, code=body.region_code))
    person = await service.create(session, data=body, now=now, scope_path=principal.scope.path)
    await ledger.append(session, at=now, actor=principal.actor, action="person.created", subject_type="person",
                        subject_id=person.id, details=body.model_dump())
    return _public(person)


@router.post("/import")
async def import_roster(principal: DutyOfficer, session: SessionDep, now: NowDep,
                        file: Annotated[UploadFile, File(description="CSV (UTF-8 or GB18030) or .xlsx")]
                        ) -> dict[str, Any]:
    """Upload a roster `region_code,name,role,phone,email`: every bad row reported at once, nothing written if any."""
    raw = await file.read(MAX_UPLOAD + 1)
    if len(raw) > MAX_UPLOAD:
        raise Invalid("the file is larger than 20 MB", "文件超过 20 MB", field="file")
    name = file.filename or "upload.csv"
    if name.lower().endswith(".xlsx"):
        raw = xlsx_as_csv(raw, filename=name)
    result = await service.import_csv(session, path=name, raw=raw, now=now, scope_path=principal.scope.path)
    await ledger.append(session, at=now, actor=principal.actor, action="person.imported", subject_type="region",
                        subject_id=principal.scope.code, details={"file": name, "rows": result.rows,
                                                                  "inserted": result.inserted,
                                                                  "updated": result.updated})
    return {"rows": result.rows, "inserted": result.inserted, "updated": result.updated}


@router.get("/health", tags=["people"])
async def roster_health(principal: Reader, session: SessionDep, now: NowDep, level: str = "grid",
                        region: str | None = None, limit: int = Query(1000, ge=1, le=10_000)) -> dict:
    """Roster health: regions of a level with no responsible person, people with no usable contact, people
    whose latest 号码核验 failed (未送达 or 未回复, with the check's date)."""
    path = principal.scope.path
    if region:
        r = await regions.get(session, code=region)
        principal.require_covers(r)
        path = r.path
    return await service.roster_health(session, scope_path=path, level=level, limit=limit, now=now)


@router.get("/{person_id}", response_model=PersonPublic)
async def get_person(person_id: int, principal: Reader, session: SessionDep) -> PersonPublic:
    """One person."""
    person = await service.get(session, person_id=person_id)
    principal.require_covers(await regions.get(session, code=person.region_code))
    return _public(person)


@router.patch("/{person_id}", response_model=PersonPublic)
async def update_person(person_id: int, body: PersonUpdate, principal: DutyOfficer, session: SessionDep,
                        now: NowDep) -> PersonPublic:
    """Change a person's contacts, role, region, deputy or active flag."""
    person = await service.get(session, person_id=person_id)
    principal.require_covers(await regions.get(session, code=person.region_code))
    if body.region_code:
        principal.require_covers(await regions.get(session, code=body.region_code))
    person = await service.update(session, person=person, data=body, now=now,
                                  scope_path=principal.scope.path)
    await ledger.append(session, at=now, actor=principal.actor, action="person.updated", subject_type="person",
                        subject_id=person.id, details=body.model_dump(exclude_unset=True))
    return _public(person)


@router.delete("/{person_id}", status_code=204)
async def deactivate_person(person_id: int, principal: DutyOfficer, session: SessionDep, now: NowDep) -> None:
    """Deactivate a person (kept for the record of past warnings)."""
    person = await service.get(session, person_id=person_id)
    principal.require_covers(await regions.get(session, code=person.region_code))
    await service.update(session, person=person, data=PersonUpdate(active=False), now=now,
                         scope_path=principal.scope.path)
    await ledger.append(session, at=now, actor=principal.actor, action="person.deactivated",
                        subject_type="person", subject_id=person.id, details={})
