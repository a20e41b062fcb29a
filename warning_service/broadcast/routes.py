"""应急广播 API: the terminal registry (scoped; duty officers and admins write, auditors read), a warning's
playback by village, and the platform's signed receipt webhook."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Response, UploadFile
from fastapi.responses import JSONResponse

from warning_service.broadcast import imports, receipts, service
from warning_service.broadcast.models import (
    Playback,
    Terminal,
    TerminalImportOut,
    TerminalIn,
    TerminalOut,
    TerminalPage,
)
from warning_service.deps import DutyOfficer, NowDep, Reader, SessionDep, SettingsDep
from warning_service.early_warning import queries
from warning_service.early_warning.models import EarlyWarning
from warning_service.errors import Invalid
from warning_service.ledger import service as ledger

router = APIRouter(prefix="/api/v1/broadcast", tags=["broadcast"])
webhook_router = APIRouter(prefix="/webhooks/broadcast", tags=["webhooks"])
MAX_UPLOAD = 20 * 1024 * 1024


async def terminal_in_scope(terminal_id: int, principal: Reader, session: SessionDep) -> Terminal:
    """The terminal named in the path, if it stands in the caller's scope (otherwise 404)."""
    return await service.get(session, terminal_id=terminal_id, scope_path=principal.scope.path)


async def warning_in_scope(warning_id: int, principal: Reader, session: SessionDep) -> EarlyWarning:
    """The warning named in the path, if it reaches the caller's scope (otherwise 404)."""
    return await queries.get_visible(session, warning_id=warning_id, actor=principal.as_actor())


ScopedTerminal = Annotated[Terminal, Depends(terminal_in_scope)]
ScopedWarning = Annotated[EarlyWarning, Depends(warning_in_scope)]


@router.get("/terminals", response_model=TerminalPage)
async def list_terminals(principal: Reader, session: SessionDep, region: str | None = None,
                         online: bool | None = None, offset: int = Query(0, ge=0, le=10_000_000),
                         limit: int = Query(100, ge=1, le=1000)) -> TerminalPage:
    """Terminals in the caller's scope (or a region's subtree in it), by town and village, with online counts."""
    return await service.list_terminals(session, scope_path=principal.scope.path, region_code=region,
                                        online=online, offset=offset, limit=limit)


@router.post("/terminals/import", response_model=TerminalImportOut)
async def import_terminals(principal: DutyOfficer, session: SessionDep, now: NowDep,
                           file: Annotated[UploadFile, File()]) -> TerminalImportOut:
    """CSV or XLSX (code,name,region_code,platform_id,online,note — or 终端编号,终端名称,区划代码,平台终端编号,
    在线状态,备注): all or nothing, every bad row reported."""
    raw = await file.read(MAX_UPLOAD + 1)
    if len(raw) > MAX_UPLOAD:
        raise Invalid("file larger than 20 MB", "文件超过 20 MB", field="file")
    res = await imports.import_terminals(session, name=file.filename or "terminals.csv", raw=raw,
                                         scope_path=principal.scope.path, now=now)
    await ledger.append(session, at=now, actor=principal.actor, action="broadcast.terminals_imported",
                        subject_type="broadcast_terminal", subject_id="import",
                        details={"file": file.filename, "rows": res.rows, "inserted": res.inserted,
                                 "updated": res.updated})
    return TerminalImportOut(rows=res.rows, inserted=res.inserted, updated=res.updated)


@router.post("/terminals", response_model=TerminalOut, status_code=201)
async def create_terminal(body: TerminalIn, principal: DutyOfficer, session: SessionDep, now: NowDep) -> TerminalOut:
    row = await service.create(session, data=body, scope_path=principal.scope.path, now=now)
    await ledger.append(session, at=now, actor=principal.actor, action="broadcast.terminal_created",
                        subject_type="broadcast_terminal", subject_id=row.id, details=body.model_dump())
    return (await service.public(session, [row]))[0]


@router.get("/terminals/{terminal_id}", response_model=TerminalOut)
async def get_terminal(terminal: ScopedTerminal, session: SessionDep) -> TerminalOut:
    return (await service.public(session, [terminal]))[0]


@router.put("/terminals/{terminal_id}", response_model=TerminalOut)
async def replace_terminal(terminal: ScopedTerminal, body: TerminalIn, principal: DutyOfficer, session: SessionDep,
                           now: NowDep) -> TerminalOut:
    row = await service.replace(session, terminal_id=terminal.id or 0, data=body, scope_path=principal.scope.path,
                                now=now)
    await ledger.append(session, at=now, actor=principal.actor, action="broadcast.terminal_updated",
                        subject_type="broadcast_terminal", subject_id=row.id, details=body.model_dump())
    return (await service.public(session, [row]))[0]


@router.delete("/terminals/{terminal_id}", status_code=204)
async def deactivate_terminal(terminal: ScopedTerminal, principal: DutyOfficer, session: SessionDep,
                              now: NowDep) -> Response:
    """No longer addressed by pushes; kept for past warnings' receipts."""
    await service.deactivate(session, terminal_id=terminal.id or 0, scope_path=principal.scope.path, now=now)
    await ledger.append(session, at=now, actor=principal.actor, action="broadcast.terminal_deactivated",
                        subject_type="broadcast_terminal", subject_id=terminal.id, details={})
    return Response(status_code=204)


@router.get("/warnings/{warning_id}/playback", response_model=Playback)
async def playback(warning: ScopedWarning, principal: Reader, session: SessionDep) -> Playback:
    """Each village's loudspeakers for the warning; villages where one did not play come first."""
    return await service.playback(session, warning_id=warning.id or 0, scope_path=principal.scope.path)


@webhook_router.post("/receipts", include_in_schema=False)
async def platform_receipts(body: Annotated[bytes, Depends(receipts.verified_body)], session: SessionDep,
                            settings: SettingsDep, now: NowDep) -> JSONResponse:
    """Play receipts (signature verified); each recorded once, a duplicate answered as taken."""
    outcome = await receipts.apply(session, items=receipts.parse(settings, body), now=now)
    return JSONResponse({"code": 0, "recorded": outcome.count("recorded"), "duplicates": outcome.count("duplicate"),
                         "unknown": outcome.count("unknown_task")})
