"""The duty roster page: the duty rooms in scope, who is on shift now (Beijing time) and the coming shifts."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from warning_service import labels
from warning_service.deps import NowDep, SessionDep, SettingsDep
from warning_service.duty import service
from warning_service.errors import DomainError
from warning_service.report.export import local
from warning_service.report.pages import _env, _error, _principal, _to_login
from warning_service.report.scope import region_param

page_router = APIRouter(prefix="/console", include_in_schema=False)


@page_router.get("/duty", response_class=HTMLResponse)
async def roster_page(request: Request, session: SessionDep, settings: SettingsDep, now: NowDep,
                      region: str | None = None, days: int = 7) -> Response:
    """Shifts of the duty rooms in scope from today for `days` days; the ones on now marked."""
    principal = await _principal(request, session, settings)
    if principal is None:
        return _to_login(request)
    try:
        area = await region_param(session, code=region, scope=principal.scope)
        shifts = await service.list_shifts(session, scope_path=area.path, since=now - timedelta(hours=12),
                                           until=now + timedelta(days=max(1, min(days, 31))), limit=2000)
        rows = await service.public(session, shifts)
    except DomainError as exc:
        return _error(request, exc)
    html = _env(str(settings.templates_dir)).get_template("duty/roster.html").render(
        user=principal.user, area=area, rows=rows, now=now, local=local, seat_zh=labels.DUTY_SEAT,
        on_now=lambda s: s.starts_at <= now < s.ends_at)
    return HTMLResponse(html)
