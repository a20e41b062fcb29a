"""值班台: the one console — login, the menu by role, the warning list, the issue form and the roster."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from warning_service.auth.service import issue_token, revoke_tokens
from warning_service.auth.throttle import TooManyAttempts, throttled_authenticate
from warning_service.clock import utcnow
from warning_service.console import service
from warning_service.console.render import BEIJING, LANDING, STATE_ZH, STATUS_ZH, render, safe_next, to_login
from warning_service.deps import TOKEN_COOKIE, NowDep, Principal, SessionDep, SettingsDep, get_principal
from warning_service.early_warning import queries, signoff
from warning_service.early_warning.guidance import default_instruction
from warning_service.early_warning.models import HAZARD_ZH, LEVEL_ZH, UNSENT_STATES, Hazard, Level
from warning_service.early_warning.preview import preview_held
from warning_service.errors import DomainError, Forbidden, Invalid
from warning_service.labels import CHANNEL as CHANNEL_ZH
from warning_service.ledger import service as ledger
from warning_service.person import service as people
from warning_service.person.models import ROLE_ZH
from warning_service.region import service as regions

page_router = APIRouter(prefix="/console", include_in_schema=False)


async def _principal(request: Request, session: Any, settings: Any) -> Principal | None:
    try:
        return await get_principal(request, session, settings, None)
    except DomainError:
        return None


def _refuse(request: Request, principal: Principal, exc: DomainError) -> HTMLResponse:
    return render(request, "error.html", user=principal.user, status_code=exc.status_code,
                  message_zh=exc.message_zh, message_en=exc.message_en,
                  home=LANDING.get(principal.user.role, "/console/warnings"))


def _allow(principal: Principal, *roles: str) -> None:
    if principal.user.role != "admin" and principal.user.role not in roles:
        raise Forbidden(f"role {principal.user.role} may not open this page",
                        f"您的角色({principal.user.role})无权打开此页面")


# --- login -----------------------------------------------------------------------------------------------------

@page_router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "login.html", user=None, next=safe_next(next), error=None, username="")


@page_router.post("/login", response_class=HTMLResponse)
async def login_submit(request: Request, session: SessionDep, settings: SettingsDep,
                       username: Annotated[str, Form()], password: Annotated[str, Form()],
                       next: Annotated[str | None, Form()] = None) -> Response:
    try:
        user = await throttled_authenticate(request.app.state.db, throttle=request.app.state.runtime.login_throttle,
                                            address=request.client.host if request.client else "unknown",
                                            username=username, password=password, now=utcnow())
    except TooManyAttempts as exc:
        return render(request, "login.html", user=None, status_code=429, next=safe_next(next), username=username,
                      error=exc.message_zh)
    if user is None:
        # The name stays in the field; the message does not say which of the two was wrong.
        return render(request, "login.html", user=None, status_code=401, next=safe_next(next), username=username,
                      error="用户名或密码错误")
    token = issue_token(user=user, secret=settings.secret_key.get_secret_value(), now=utcnow(),
                        minutes=settings.access_token_minutes)
    target = safe_next(next, default=LANDING.get(user.role, "/console/warnings"))
    if target in ("/console", "/console/"):
        target = LANDING.get(user.role, "/console/warnings")
    resp = RedirectResponse(target, status_code=303)
    resp.set_cookie(TOKEN_COOKIE, token, max_age=settings.access_token_minutes * 60, httponly=True,
                    samesite="strict", secure=settings.public_base_url.startswith("https://"), path="/")
    return resp


@page_router.post("/logout")
async def logout(request: Request, session: SessionDep, settings: SettingsDep) -> RedirectResponse:
    """Log out: the cookie dies with the page, and the token itself too — a copy of it would stay valid."""
    principal = await _principal(request, session, settings)
    if principal is not None:
        await revoke_tokens(session, user=principal.user)
    resp = RedirectResponse("/console/login", status_code=303)
    resp.delete_cookie(TOKEN_COOKIE, path="/")
    return resp


@page_router.get("", include_in_schema=False)
@page_router.get("/")
async def landing(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Each role's first page: duty officer → 预警列表, auditor → 叫应统计, admin → 人员名册."""
    principal = await _principal(request, session, settings)
    if principal is None:
        return to_login(request)
    return RedirectResponse(LANDING.get(principal.user.role, "/console/warnings"), status_code=303)


@page_router.get("/board")
async def board(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """叫应看板: the newest active warning's board, or the list of active warnings if there is none."""
    principal = await _principal(request, session, settings)
    if principal is None:
        return to_login(request)
    wid = await service.latest_active(session, actor=principal.as_actor())
    return RedirectResponse(f"/console/warnings/{wid}" if wid else "/console/warnings?state=active",
                            status_code=303)


# --- 预警列表 -----------------------------------------------------------------------------------------------------

def _day(value: str | None, field: str, label: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=BEIJING)
    except ValueError:
        raise Invalid(f"{field}: not a date like 2026-07-01", f"{label}格式应为 2026-07-01", field=field) from None


def _choice(value: str | None, allowed: dict[str, str], field: str, label: str) -> str | None:
    if value and value not in allowed:
        raise Invalid(f"{field}: unknown value {value!r}", f"{label}“{value}”无效", field=field)
    return value or None


@page_router.get("/warnings", response_class=HTMLResponse)
async def warning_list(request: Request, session: SessionDep, settings: SettingsDep,
                       state: str | None = None, hazard: str | None = None, level: str | None = None,
                       status: str | None = None, region: str | None = None,
                       region_q: Annotated[str | None, Query(max_length=50)] = None,
                       from_: Annotated[str | None, Query(alias="from")] = None, to: str | None = None,
                       page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> Response:
    """预警列表: active first; filters by state, hazard, level, kind, region (by Chinese name) and date."""
    principal = await _principal(request, session, settings)
    if principal is None:
        return to_login(request)
    try:
        _allow(principal, "duty_officer", "leader", "auditor")
        since, until = _day(from_, "from", "起始日期"), _day(to, "to", "截止日期")
        area = None
        if region:
            area = await regions.get(session, code=region)
            principal.require_covers(area)
        elif region_q and region_q.strip():
            area = await service.region_by_name(session, scope_path=principal.scope.path, q=region_q.strip())
            region = area.code
        filters = service.WarningFilter(
            state=_choice(state, STATE_ZH, "state", "状态"), hazard=_choice(hazard, HAZARD_ZH, "hazard", "灾种"),
            level=_choice(level, LEVEL_ZH, "level", "等级"), status=_choice(status, STATUS_ZH, "status", "类别"),
            region=region or None, issued_from=since, issued_to=until + timedelta(days=1) if until else None)
        total, rows = await service.warning_rows(session, actor=principal.as_actor(), filters=filters, page=page)
    except DomainError as exc:
        return _refuse(request, principal, exc)
    query = {k: v for k, v in (("state", state), ("hazard", hazard), ("level", level), ("status", status),
                               ("region", region), ("from", from_), ("to", to)) if v}
    area_name = (await regions.region_paths(session, [area.code])).get(area.code, area.name) if area else ""
    pages = max(1, -(-total // service.PAGE_SIZE))
    return render(request, "warnings.html", user=principal.user, active="warnings", rows=rows, total=total,
                  page=page, pages=pages, query=query, qs=lambda **kw: urlencode({**query, **kw}),
                  area=area, area_name=area_name, region_q=region_q or "",
                  hazards=HAZARD_ZH, levels=LEVEL_ZH, states=STATE_ZH, statuses=STATUS_ZH,
                  can_issue=principal.user.role in ("duty_officer", "admin"))


@page_router.get("/warnings/{warning_id}", response_class=HTMLResponse)
async def warning_board(warning_id: int, request: Request, session: SessionDep, settings: SettingsDep,
                        issued: Annotated[int | None, Query(ge=0)] = None) -> Response:
    """叫应看板 of one warning: live figures (polled), unanswered list, proxy answers, update and lift."""
    principal = await _principal(request, session, settings)
    if principal is None:
        return to_login(request)
    try:
        _allow(principal, "duty_officer", "leader", "auditor")
        actor = principal.as_actor()
        w = await queries.get_visible(session, warning_id=warning_id, actor=actor)
        final = (await service.final_figures(session, warning_id=warning_id, actor=actor)
                 if w.state not in ("active", *UNSENT_STATES) else None)
        held = await signoff.signoff_of(session, warning_id=warning_id)
    except DomainError as exc:
        return _refuse(request, principal, exc)
    can_act = principal.user.role in ("duty_officer", "admin")
    board = {"id": w.id, "state": w.state, "level": w.level, "can_act": can_act, "role_zh": ROLE_ZH}
    return render(request, "board.html", user=principal.user, active="board", w=w, final=final, board=board,
                  can_act=can_act, levels=LEVEL_ZH, issued=issued, signoff=held,
                  unsent=w.state in UNSENT_STATES, can_approve=principal.user.role == "leader")


# --- 预警发布 -----------------------------------------------------------------------------------------------------

@page_router.get("/issue", response_class=HTMLResponse)
async def issue_form(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """预警发布: hazard and level by name, the region picker, guidance, the policy in force, preview, confirm."""
    principal = await _principal(request, session, settings)
    if principal is None:
        return to_login(request)
    try:
        _allow(principal, "duty_officer")
    except DomainError as exc:
        return _refuse(request, principal, exc)
    book = request.app.state.runtime.policy
    policies = {f"{h.value}.{lv.value}": book.snapshot(h.value, lv.value) for h in Hazard for lv in Level}
    guidance = {f"{h.value}.{lv.value}": default_instruction(settings.templates_dir, h.value, lv.value)
                for h in Hazard for lv in Level}
    return render(request, "issue.html", user=principal.user, active="issue", scope=principal.scope,
                  hazards=HAZARD_ZH, levels=LEVEL_ZH, statuses=STATUS_ZH, policies=policies, guidance=guidance,
                  role_zh=ROLE_ZH, idempotency_key=secrets.token_urlsafe(18))


# --- 待审核 (审核签发) ------------------------------------------------------------------------------------------

@page_router.get("/approvals", response_class=HTMLResponse)
async def approvals(request: Request, session: SessionDep, settings: SettingsDep, now: NowDep) -> Response:
    """待审核: warnings held for sign-off in the leader's scope, each with what approving it would send."""
    principal = await _principal(request, session, settings)
    if principal is None:
        return to_login(request)
    if principal.user.role != "leader":
        # Not even an admin: 审核签发 is the leader's own act, recorded under their name.
        return _refuse(request, principal, Forbidden(
            "only a leader (带班领导) signs warnings off", "只有带班领导可以审核签发预警"))
    items = await signoff.queue(session, actor=principal.as_actor())
    previews = [await preview_held(session, warning=p.warning, settings=settings, now=now) for p in items]
    return render(request, "approvals.html", user=principal.user, active="approvals",
                  items=list(zip(items, previews, strict=True)), channel_zh=CHANNEL_ZH)


# --- 人员名册 -----------------------------------------------------------------------------------------------------

@page_router.get("/people", response_class=HTMLResponse)
async def roster(request: Request, session: SessionDep, settings: SettingsDep, now: NowDep, region: str | None = None,
                 role: str | None = None, q: str | None = None,
                 page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> Response:
    """人员名册: people by region with role and phones, the roster's health, and the upload form."""
    principal = await _principal(request, session, settings)
    if principal is None:
        return to_login(request)
    try:
        _allow(principal, "duty_officer", "leader", "auditor")
        area = principal.scope
        if region:
            area = await regions.get(session, code=region)
            principal.require_covers(area)
        total, rows = await people.list_people(session, scope_path=principal.scope.path, region_code=area.code,
                                               role=role or None, q=q or None, offset=(page - 1) * 100, limit=100)
        paths = await regions.region_paths(session, list({p.region_code for p in rows}))
        health = await service.roster_health(session, scope_path=area.path, now=now)
        deputy = await service.deputies(session, people=rows)
    except DomainError as exc:
        return _refuse(request, principal, exc)
    query = {k: v for k, v in (("region", region), ("role", role), ("q", q)) if v}
    return render(request, "people.html", user=principal.user, active="people", rows=rows, total=total,
                  paths=paths, area=area, health=health, deputy=deputy, page=page, pages=max(1, -(-total // 100)),
                  qs=lambda **kw: urlencode({**query, **kw}), role_zh=ROLE_ZH, q=q or "", role=role or "",
                  can_upload=principal.user.role in ("duty_officer", "admin"))


# --- 审计 -------------------------------------------------------------------------------------------------------

@page_router.get("/audit", response_class=HTMLResponse)
async def audit(request: Request, session: SessionDep, settings: SettingsDep,
                action: Annotated[str | None, Query(max_length=41)] = None,
                subject_id: Annotated[str | None, Query(max_length=80)] = None,
                before: Annotated[int | None, Query(ge=1)] = None) -> Response:
    """审计: the ledger in the auditor's scope, newest first (the chain is checked by /api/v1/audit/verify)."""
    principal = await _principal(request, session, settings)
    if principal is None:
        return to_login(request)
    try:
        _allow(principal, "auditor")
        scope_path = None if principal.scope.parent_code is None else principal.scope.path
        rows, next_before = await ledger.list_entries(
            session, filters=ledger.LedgerFilter(action=action or None, subject_id=subject_id or None),
            scope_path=scope_path, before=before, limit=100)
    except DomainError as exc:
        return _refuse(request, principal, exc)
    query = {k: v for k, v in (("action", action), ("subject_id", subject_id)) if v}
    return render(request, "audit.html", user=principal.user, active="audit", rows=rows, next_before=next_before,
                  action=action or "", subject_id=subject_id or "",
                  more=urlencode({**query, "before": next_before}) if next_before else None)
