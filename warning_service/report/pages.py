"""The auditors' console: a cookie login and server-rendered report pages (Jinja2, inline SVG charts)."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from warning_service.deps import NowDep, Principal, SessionDep, SettingsDep, get_principal
from warning_service.errors import DomainError, Forbidden
from warning_service.region.models import LEVEL_ZH as REGION_LEVEL_ZH
from warning_service.report import charts, scope, service
from warning_service.report.export import local, pct
from warning_service.report.missing import ACK_PATH_ZH, CHANNEL_ZH, STATUS_ZH
from warning_service.report.params import parse_when
from warning_service.report.summary import summary

page_router = APIRouter(prefix="/console", include_in_schema=False)
ROLES = ("auditor", "admin")
CHART_LEVEL = {"province": "town", "city": "town", "county": "town", "town": "village", "village": "grid"}
CHART_BARS, TABLE_ROWS = 40, 300  # worst first; the full list is in the CSV (rows=regions)


@lru_cache
def _env(templates_dir: str) -> Environment:
    env = Environment(loader=FileSystemLoader(templates_dir), autoescape=select_autoescape(["html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(local=local, pct=pct, ack_path_zh=lambda v: ACK_PATH_ZH.get(v or "", v or ""),
                       channel_zh=lambda v: CHANNEL_ZH.get(v or "", v or ""),
                       status_zh=lambda v: STATUS_ZH.get(v or "", v or ""), colour=charts.rate_colour)
    return env


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    settings = request.app.state.settings
    # Inline scripts run only with this response's CSP nonce (warning_service/security.py).
    nonce = getattr(request.state, "csp_nonce", "")
    html = _env(str(Path(settings.templates_dir))).get_template(f"report/{name}").render(csp_nonce=nonce, **context)
    return HTMLResponse(html, status_code=status_code)


async def _principal(request: Request, session: Any, settings: Any) -> Principal | None:
    try:
        return await get_principal(request, session, settings, None)
    except DomainError:
        return None


def _to_login(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/console/login?next={quote(here, safe='')}", status_code=303)


# Login and logout are the console's (warning_service/console/pages.py): one login for every role.


@page_router.get("/reports", response_class=HTMLResponse)
async def summary_page(request: Request, session: SessionDep, settings: SettingsDep, now: NowDep,
                       region: str | None = None, from_: Annotated[str | None, Query(alias="from")] = None,
                       to: str | None = None) -> Response:
    """Warnings of a period with their rates and the towns that answer worst."""
    principal = await _principal(request, session, settings)
    if principal is None:
        return _to_login(request)
    try:
        _allowed(principal)
        # Up to and including this instant.
        until = parse_when(to, field="to", end_of_day=True) or now + timedelta(microseconds=1)
        since = parse_when(from_, field="from") or until - timedelta(days=30)
        area = await scope.region_param(session, code=region, scope=principal.scope)
        rank = "town" if area.level in ("province", "city", "county", "town") else "village"
        async with scope.snapshot(request.app.state.db, releasing=session) as s:
            data = await summary(s, region=area, since=since, until=until, rank_level=rank)
    except DomainError as exc:
        return _error(request, exc)
    actual = data["statuses"]["actual"]
    return render(request, "summary.html", data=data, user=principal.user, actual=actual,
                  bars=charts.rate_bars(actual["by_region"][:40], chart_id="region-rates"))


@page_router.get("/reports/warnings/{warning_id}", response_class=HTMLResponse)
async def warning_page(warning_id: int, request: Request, session: SessionDep, settings: SettingsDep,
                       now: NowDep, region: str | None = None) -> Response:
    """One warning: answers over time against the deadline, rates by town, who is missing."""
    principal = await _principal(request, session, settings)
    if principal is None:
        return _to_login(request)
    try:
        _allowed(principal)
        area = await scope.region_param(session, code=region, scope=principal.scope)
        scoped = await scope.scoped_warning(session, warning_id=warning_id, region=area)
        # Bars one level below the area looked at: towns of a county (or wider), villages of a town, …
        level = CHART_LEVEL.get(area.level, "town")
        async with scope.snapshot(request.app.state.db, releasing=session) as s:
            report = await service.warning_report(s, scoped=scoped, now=now, rollup=level, missing_limit=500)
    except DomainError as exc:
        return _error(request, exc)
    nodes = sorted((n for n in report["rollup"]["nodes"] if n["level"] == level),
                   key=lambda n: (n["subtree"]["rate"] is None, n["subtree"]["rate"] or 0, n["path"]))
    rows = [{"code": n["code"], "name": n["name"], **n["subtree"]} for n in nodes]
    return render(request, "warning.html", r=report, user=principal.user, towns=rows[:TABLE_ROWS],
                  town_count=len(rows), level_zh=REGION_LEVEL_ZH[level],
                  curve=charts.ack_curve(report["timeline"], required=report["totals"]["required"]),
                  bars=charts.rate_bars(rows[:CHART_BARS]), region_query=f"?region={area.code}" if region else "",
                  region_value=area.name if region else "")


def _allowed(principal: Principal) -> None:
    if principal.user.role not in ROLES:
        raise Forbidden(f"role {principal.user.role} may not read reports",
                        f"角色 {principal.user.role} 无权查看统计")


def _error(request: Request, exc: DomainError) -> HTMLResponse:
    return render(request, "error.html", status_code=exc.status_code, message=exc.message_en,
                  message_zh=exc.message_zh)
