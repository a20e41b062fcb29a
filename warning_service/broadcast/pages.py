"""广播终端: the loudspeakers of the caller's scope by town and village, with their online state and the upload."""

from __future__ import annotations

from itertools import groupby
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from warning_service.broadcast import service
from warning_service.console.render import render, to_login
from warning_service.deps import SessionDep, SettingsDep, get_principal
from warning_service.errors import DomainError, Forbidden

page_router = APIRouter(prefix="/console", include_in_schema=False)
PAGE_SIZE = 500


@page_router.get("/broadcast", response_class=HTMLResponse)
async def terminals_page(request: Request, session: SessionDep, settings: SettingsDep, region: str | None = None,
                         offline: bool = False, page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> Response:
    try:
        principal = await get_principal(request, session, settings, None)
    except DomainError:
        return to_login(request)
    try:
        if principal.user.role not in ("duty_officer", "auditor", "admin"):
            raise Forbidden(f"role {principal.user.role} may not open this page", "您的角色无权打开此页面")
        found = await service.list_terminals(session, scope_path=principal.scope.path, region_code=region or None,
                                             online=False if offline else None, offset=(page - 1) * PAGE_SIZE,
                                             limit=PAGE_SIZE)
    except DomainError as exc:
        return render(request, "error.html", user=principal.user, status_code=exc.status_code,
                      message_zh=exc.message_zh, message_en=exc.message_en, home="/console/broadcast")
    towns = [(town, [(village, list(ts)) for village, ts in groupby(rows, key=lambda t: t.village_name)])
             for town, rows in groupby(found.items, key=lambda t: t.town_name or "—")]
    return render(request, "broadcast.html", user=principal.user, active="broadcast", found=found, towns=towns,
                  region=region or "", offline=offline, page=page, pages=max(1, -(-found.total // PAGE_SIZE)),
                  can_upload=principal.user.role in ("duty_officer", "admin"))
