"""Emergency responses: start, adjust, end, link warnings; the board's 到岗率. All inside the caller's scope."""

from __future__ import annotations

from fastapi import APIRouter, Request

from warning_service import labels
from warning_service.deps import DutyOfficer, NowDep, Reader, SessionDep
from warning_service.early_warning.policy import PolicyBook
from warning_service.region import service as regions
from warning_service.response import service
from warning_service.response.models import (
    EmergencyResponse,
    ResponseAdjust,
    ResponseEnd,
    ResponseLink,
    ResponsePublic,
    ResponseStart,
)

router = APIRouter(prefix="/api/v1/responses", tags=["responses"])


def _policy(request: Request) -> PolicyBook:
    return request.app.state.runtime.policy


def _public(r: EmergencyResponse, att: dict) -> ResponsePublic:
    return ResponsePublic(id=r.id, region_code=r.region_code, hazard=r.hazard, level=r.level,  # type: ignore[arg-type]
                          level_zh=labels.zh(labels.RESPONSE_LEVEL, r.level), state=r.state, warning_id=r.warning_id,
                          exercise=r.exercise, decided_by=r.decided_by, started_at=r.started_at, ended_at=r.ended_at,
                          attendance=att)


async def _in_scope(session, principal, response_id: int) -> EmergencyResponse:
    resp = await service.get(session, response_id=response_id)
    principal.require_covers(await regions.get(session, code=resp.region_code))
    return resp


@router.get("", response_model=list[ResponsePublic])
async def list_responses(principal: Reader, session: SessionDep, now: NowDep,
                         active: bool = False) -> list[ResponsePublic]:
    """Responses in scope, newest first, each with its 到岗率."""
    rows = await service.list_responses(session, scope_path=principal.scope.path, active_only=active)
    att = await service.attendance(session, [r.id for r in rows], now=now)  # type: ignore[misc]
    return [_public(r, att[r.id]) for r in rows]  # type: ignore[index]


@router.post("", response_model=ResponsePublic, status_code=201)
async def start_response(body: ResponseStart, request: Request, principal: DutyOfficer, session: SessionDep,
                         now: NowDep) -> ResponsePublic:
    """Start a response from the warning that triggered it; 到岗 demands go out to the roles its level names."""
    principal.require_covers(await regions.get(session, code=body.region_code))
    resp, _ = await service.start(session, data=body, actor=principal.actor, policy=_policy(request), now=now)
    return _public(resp, (await service.attendance(session, [resp.id], now=now))[resp.id])  # type: ignore[list-item,index]


@router.get("/{response_id}", response_model=ResponsePublic)
async def get_response(response_id: int, principal: Reader, session: SessionDep, now: NowDep) -> ResponsePublic:
    """One response with its 到岗率 by role."""
    resp = await _in_scope(session, principal, response_id)
    return _public(resp, (await service.attendance(session, [response_id], now=now))[response_id])


@router.post("/{response_id}/level", response_model=ResponsePublic)
async def adjust_response(response_id: int, body: ResponseAdjust, request: Request, principal: DutyOfficer,
                          session: SessionDep, now: NowDep) -> ResponsePublic:
    """Raise or lower the level; raising demands 到岗 of the roles the new level adds."""
    await _in_scope(session, principal, response_id)
    resp, _ = await service.adjust(session, response_id=response_id, data=body, actor=principal.actor,
                                   policy=_policy(request), now=now)
    return _public(resp, (await service.attendance(session, [response_id], now=now))[response_id])


@router.post("/{response_id}/end", response_model=ResponsePublic)
async def end_response(response_id: int, body: ResponseEnd, principal: DutyOfficer, session: SessionDep,
                       now: NowDep) -> ResponsePublic:
    """End the response; unanswered demands are closed."""
    await _in_scope(session, principal, response_id)
    resp = await service.end(session, response_id=response_id, data=body, actor=principal.actor, now=now)
    return _public(resp, (await service.attendance(session, [response_id], now=now))[response_id])


@router.post("/{response_id}/warnings", status_code=204)
async def link_warning(response_id: int, body: ResponseLink, principal: DutyOfficer, session: SessionDep,
                       now: NowDep) -> None:
    """Link a warning issued under this response."""
    await _in_scope(session, principal, response_id)
    await service.link_warning(session, response_id=response_id, warning_id=body.warning_id, actor=principal.actor,
                               now=now)
