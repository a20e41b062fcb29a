"""演练 page of the console: the coming and finished drills and number checks in scope, the form to schedule."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from warning_service.console.pages import _allow, _principal, _refuse
from warning_service.console.render import render, to_login
from warning_service.deps import NowDep, SessionDep, SettingsDep
from warning_service.drills import service
from warning_service.early_warning.models import HAZARD_ZH, LEVEL_ZH
from warning_service.errors import DomainError

page_router = APIRouter(prefix="/console", include_in_schema=False)


@page_router.get("/drills", response_class=HTMLResponse)
async def drills_page(request: Request, session: SessionDep, settings: SettingsDep, now: NowDep) -> Response:
    """演练: runs with their state and 叫应率, links to their report, 通报 section and failed numbers."""
    principal = await _principal(request, session, settings)
    if principal is None:
        return to_login(request)
    try:
        _allow(principal, "duty_officer", "auditor")
        rows = await service.public(session, await service.list_drills(session, actor=principal.as_actor()), now=now)
    except DomainError as exc:
        return _refuse(request, principal, exc)
    return render(request, "drills.html", user=principal.user, active="drills", rows=rows, scope=principal.scope,
                  hazards=HAZARD_ZH, levels=LEVEL_ZH, now=now,
                  can_schedule=principal.user.role in ("duty_officer", "admin"),
                  # The 通报 and reports are the auditors' (report/pages.py): link them only for those who may read.
                  can_read_reports=principal.user.role in ("auditor", "admin"),
                  answer_minutes=settings.number_check_answer_minutes, notice_hours=settings.drill_notice_hours)
