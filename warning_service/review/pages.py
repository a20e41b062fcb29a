"""The printable 复盘 page of one warning."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from warning_service.deps import NowDep, SessionDep, SettingsDep
from warning_service.errors import DomainError
from warning_service.report.export import local, pct
from warning_service.report.pages import _allowed, _env, _error, _principal, _to_login
from warning_service.review.routes import build

page_router = APIRouter(prefix="/console", include_in_schema=False)


@page_router.get("/reviews/warnings/{warning_id}", response_class=HTMLResponse)
async def review_page(warning_id: int, request: Request, session: SessionDep, settings: SettingsDep, now: NowDep,
                      region: str | None = None) -> Response:
    """复盘: the report's figures and the timeline; prints on A4."""
    principal = await _principal(request, session, settings)
    if principal is None:
        return _to_login(request)
    try:
        _allowed(principal)
        data = await build(request, session, principal, now, warning_id, region)
    except DomainError as exc:
        return _error(request, exc)
    html = _env(str(settings.templates_dir)).get_template("review/warning.html").render(
        d=data, r=data["report"], user=principal.user, now=now, local=local, pct=pct, warning_id=warning_id)
    return HTMLResponse(html)
