"""The printable 通报 (A4, print CSS, Chinese fonts from the system, no external assets)."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from warning_service.assessment.routes import build
from warning_service.deps import NowDep, SessionDep, SettingsDep
from warning_service.errors import DomainError
from warning_service.report.export import local, pct
from warning_service.report.pages import _allowed, _env, _error, _principal, _to_login

page_router = APIRouter(prefix="/console", include_in_schema=False)


@page_router.get("/tongbao", response_class=HTMLResponse)
async def tongbao_page(request: Request, session: SessionDep, settings: SettingsDep, now: NowDep,
                       region: str | None = None, period: str = "month", on: date | None = None) -> Response:
    """The 通报 page: scores, 红榜/黑榜, the full ranking; prints on A4."""
    principal = await _principal(request, session, settings)
    if principal is None:
        return _to_login(request)
    try:
        _allowed(principal)
        report = await build(request, session, principal, now, region=region, period=period, on=on)
    except DomainError as exc:
        return _error(request, exc)
    query = request.url.query
    html = _env(str(settings.templates_dir)).get_template("assessment/tongbao.html").render(
        r=report, user=principal.user, now=now, local=local, pct=pct, query=query)
    return HTMLResponse(html)
