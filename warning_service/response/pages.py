"""The response board: responses in scope, their level history and 到岗率 by role."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from warning_service import labels
from warning_service.deps import NowDep, SessionDep, SettingsDep
from warning_service.report.export import local, pct
from warning_service.report.pages import _env, _principal, _to_login
from warning_service.response import service

page_router = APIRouter(prefix="/console", include_in_schema=False)


@page_router.get("/responses", response_class=HTMLResponse)
async def board(request: Request, session: SessionDep, settings: SettingsDep, now: NowDep) -> Response:
    """Responses in scope, newest first: level, who decided, changes, 到岗率."""
    principal = await _principal(request, session, settings)
    if principal is None:
        return _to_login(request)
    rows = await service.list_responses(session, scope_path=principal.scope.path)
    ids = [r.id for r in rows]
    att = await service.attendance(session, ids, now=now)  # type: ignore[arg-type]
    history: dict[int, list] = {}
    for c in await service.changes(session, response_ids=ids):  # type: ignore[arg-type]
        history.setdefault(c.response_id, []).append(c)
    html = _env(str(settings.templates_dir)).get_template("response/board.html").render(
        user=principal.user, rows=rows, att=att, history=history, now=now, local=local, pct=pct,
        level_zh=lambda v: labels.zh(labels.RESPONSE_LEVEL, v), hazard_zh=lambda v: labels.zh(labels.HAZARD, v),
        action_zh=lambda v: labels.zh(labels.RESPONSE_ACTION, v),
        state_zh=lambda v: labels.zh(labels.RESPONSE_STATE, v))
    return HTMLResponse(html)
