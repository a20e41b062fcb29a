"""The duty officer's live page: who has and has not answered, refreshed every few seconds."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from warning_service.deps import SessionDep, SettingsDep, get_principal
from warning_service.early_warning import queries
from warning_service.early_warning.models import HAZARD_ZH, LEVEL_COLOUR, LEVEL_ZH
from warning_service.errors import DomainError

page_router = APIRouter(prefix="/console", include_in_schema=False)


@lru_cache(maxsize=4)
def _env(templates_dir: str) -> Environment:
    return Environment(loader=FileSystemLoader(templates_dir), autoescape=select_autoescape(["html"]),
                       undefined=StrictUndefined)


@page_router.get("/warnings/{warning_id}", response_class=HTMLResponse)
async def live(warning_id: int, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Live 叫应 board for one warning (cookie login; data comes from the JSON API the page polls)."""
    try:
        principal = await get_principal(request, session, settings, None)
        warning = await queries.get_visible(session, warning_id=warning_id, actor=principal.as_actor())
    except DomainError as exc:
        if exc.status_code == 401:
            return RedirectResponse(f"/console/login?next={quote(request.url.path, safe='')}", status_code=303)
        return HTMLResponse(f"<p>{exc.message_zh}</p><p>{exc.message_en}</p>", status_code=exc.status_code)
    html = _env(str(settings.templates_dir)).get_template("console/warning_live.html").render(
        w=warning, hazard_zh=HAZARD_ZH.get(warning.hazard, warning.hazard), level_zh=LEVEL_ZH[warning.level],
        colour=LEVEL_COLOUR[warning.level], user=principal.user,
        can_act=principal.user.role in ("duty_officer", "admin"),
        csp_nonce=getattr(request.state, "csp_nonce", ""))  # the page's one inline script (security.py)
    return HTMLResponse(html)
