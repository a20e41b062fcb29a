"""The 转移任务 page behind the SMS link (mobile, no login, the notice's own token) and the board page.

The page lists every household of the keeper's one notice, each with its own decision form. Any decision
posted from it also answers the notice (叫应), as the link page's button does: whoever reports where a family
went has plainly got the message.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from pydantic import ValidationError
from sqlalchemy import case, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.acknowledgment import pages as ack_pages
from warning_service.acknowledgment.routes import client_ip, notice_from_token
from warning_service.config import Settings
from warning_service.deps import NowDep, Reader, SessionDep, SettingsDep
from warning_service.early_warning.messages import local_minute
from warning_service.errors import DomainError, Invalid
from warning_service.evacuation import report, service, shelters
from warning_service.evacuation.models import (
    TASK_STATUS_ZH,
    VULNERABLE_ZH,
    ZONE_KIND_ZH,
    Shelter,
    TaskDecision,
    TaskStatus,
)
from warning_service.notice import answer
from warning_service.notice.answer import NotAcknowledgeable
from warning_service.notice.models import ANSWERABLE_STATES, Notice
from warning_service.notice.tokens import link_key
from warning_service.region.models import Region
from warning_service.region.scope import Scope

page_router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=4)
def _link_key(secret: str) -> bytes:
    return link_key(secret)


def link_key_of(settings: Settings) -> bytes:
    return _link_key(settings.secret_key.get_secret_value())


CHOICES = [
    (s.value, TASK_STATUS_ZH[s])
    for s in (
        TaskStatus.moved,
        TaskStatus.with_relatives,
        TaskStatus.refused,
        TaskStatus.unreachable,
        TaskStatus.returned,
    )
]
STATE_CLASS = {
    "moved": "ok",
    "with_relatives": "ok",
    "refused": "warn",
    "unreachable": "warn",
    "returned": "warn",
    "pending": "off",
}


def gone(views: list[service.TaskView], *, now: datetime, grace_hours: int) -> bool:
    """A task page lives until every household on it is released, plus the grace period — not merely until
    the lift: evacuees stay out after a lift, and returns must still be recorded."""
    released = [v.task.released_at for v in views]
    return all(r is not None for r in released) and now > max(released) + timedelta(hours=grace_hours)  # type: ignore[type-var]


async def _shelters_near(session: AsyncSession, view: service.TaskView) -> list[Any]:
    """Active shelters of the zone's county (its town's parent), those of its own town first."""
    town = await session.get(Region, view.zone.town_code) if view.zone.town_code else None
    county = await session.get(Region, town.parent_code) if town and town.parent_code else None
    area = county or town or await session.get(Region, view.zone.region_code)
    assert area is not None
    same_town = Scope(town.path).predicate(Region.path) if town else Region.path.is_(None)
    return list(
        (
            await session.execute(
                select(Shelter.id, Shelter.name, Shelter.capacity)
                .join(Region, Region.code == Shelter.region_code)
                .where(Shelter.active.is_(True), Scope(area.path).predicate(Region.path))
                .order_by(case((same_town, 0), else_=1), Shelter.name)
                .limit(100)
            )
        ).all()
    )


async def _household(session: AsyncSession, view: service.TaskView, shelters: dict[int, str]) -> dict[str, Any]:
    t, h, z = view.task, view.household, view.zone
    village = await session.get(Region, z.village_code) if z.village_code else None
    return {
        "id": t.id,
        "status": t.status,
        "status_zh": TASK_STATUS_ZH.get(t.status, t.status),
        "state_class": STATE_CLASS.get(t.status, "off"),
        "household": h.name,
        "people": h.people,
        "phone": h.phone or "",
        "people_moved": t.people_moved,
        "vulnerable": "、".join(VULNERABLE_ZH.get(v, v) for v in h.vulnerable.split(",") if v),
        "zone": z.name,
        "zone_kind": ZONE_KIND_ZH.get(z.kind, z.kind),
        "village": village.name if village else "",
        "shelter": shelters.get(t.shelter_id, "") if t.shelter_id else "",
        "shelter_id": t.shelter_id,
        "arrived_people": t.arrived_people,
        "note": t.note,
        "returned_early": t.returned_early,
        "released": t.released_at is not None,
    }


async def _context(
    session: AsyncSession,
    views: list[service.TaskView],
    *,
    token: str,
    request: Request,
    flash: str | None = None,
    error: str | None = None,
    error_task: int | None = None,
    posted: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The page's values; after a refused decision, the household's form keeps what was posted."""
    first = views[0]
    w = first.warning
    notice = await session.get(Notice, first.task.notice_id)
    assert notice is not None
    near = await _shelters_near(session, first)
    names = {s.id: s.name for s in near}
    missing = [v.task.shelter_id for v in views if v.task.shelter_id and v.task.shelter_id not in names]
    if missing:
        names |= dict((await session.execute(select(Shelter.id, Shelter.name).where(Shelter.id.in_(missing)))).all())
    wctx = ack_pages._warning_context(w)
    wctx["state"] = w.state
    households = [await _household(session, v, names) for v in views]
    for h in households:
        h["checked"], h["note_text"] = h["status"], h["note"] or ""
        if posted is not None and h["id"] == error_task:
            h["checked"], h["note_text"] = posted.get("status", ""), posted.get("note", "")
    return {
        "w": wctx,
        "flash": flash,
        "error": error,
        "error_task": error_task,
        "base": f"{request.scope.get('root_path', '')}/e/{token}",
        "keeper": first.keeper.name,
        "households": households,
        "total_people": sum(h["people"] for h in households),
        "done": sum(1 for h in households if h["status"] != "pending"),
        "ack_open": notice.state in ANSWERABLE_STATES and w.state == "active",
        "deadline": local_minute(notice.deadline),
        "choices": CHOICES,
        "shelters": near,
    }


async def _views(session: AsyncSession, token: str, settings: Settings) -> list[service.TaskView]:
    notice_id = notice_from_token(token, settings)
    if notice_id is None:
        return []
    return await service.load_keeper_tasks(session, notice_id=notice_id, lock=True)


async def _bad(request: Request, settings: Settings) -> Response:
    rt = request.app.state.runtime
    over = await rt.bad_tokens.hit(client_ip(request), rt.clock.now())
    return ack_pages.message_page(settings, 429 if over else 404, headers={"Retry-After": "60"} if over else None)


def _render(
    settings: Settings, context: dict[str, Any], status_code: int = 200, *, template: str = "task"
) -> HTMLResponse:
    html = (
        ack_pages.environment(str(settings.templates_dir))
        .get_template(f"evacuation/{template}.html.j2")
        .render(context)
    )
    return HTMLResponse(html, status_code=status_code, headers=ack_pages.SECURITY_HEADERS)


async def _acknowledge(session: AsyncSession, notice_id: int, request: Request, now: datetime) -> None:
    try:
        await answer.acknowledge(session, notice_id=notice_id, path="link", now=now, source=client_ip(request))
    except NotAcknowledgeable:
        pass  # the warning was lifted or the round closed: the decision still counts, the 叫应 is over


@page_router.get("/e/{token}", response_model=None)
async def task_page(
    token: str,
    request: Request,
    settings: SettingsDep,
    session: SessionDep,
    now: NowDep,
    saved: int = 0,
    acked: int = 0,
) -> Response:
    """转移任务: the keeper's households, 确认收到, and where each family went."""
    views = await _views(session, token, settings)
    if not views:
        return await _bad(request, settings)
    if gone(views, now=now, grace_hours=settings.ack_link_grace_hours):
        return ack_pages.message_page(settings, 410)
    flash = "已保存,谢谢!" if saved else ("已确认收到,请立即组织转移。" if acked else None)
    return _render(settings, await _context(session, views, token=token, request=request, flash=flash))


@page_router.post("/e/{token}/ack", response_model=None)
async def task_ack(token: str, request: Request, settings: SettingsDep, session: SessionDep, now: NowDep) -> Response:
    """确认收到 from the task page (answers the keeper's one notice)."""
    views = await _views(session, token, settings)
    if not views:
        return await _bad(request, settings)
    if gone(views, now=now, grace_hours=settings.ack_link_grace_hours):
        return ack_pages.message_page(settings, 410)
    await _acknowledge(session, views[0].task.notice_id, request, now)
    return RedirectResponse(f"{request.scope.get('root_path', '')}/e/{token}?acked=1", status_code=303)


@page_router.post("/e/{token}", response_model=None)
async def task_decision(
    token: str, request: Request, settings: SettingsDep, session: SessionDep, now: NowDep
) -> Response:
    """The 包户责任人 reports, for one of their households, 已转移 / 投亲靠友 / 拒绝转移 / 不在家 / 已返回."""
    views = await _views(session, token, settings)
    if not views:
        return await _bad(request, settings)
    if gone(views, now=now, grace_hours=settings.ack_link_grace_hours):
        return ack_pages.message_page(settings, 410)
    form = await request.form()
    posted = {k: str(form.get(k) or "") for k in ("status", "note")}
    raw_task = str(form.get("task_id") or "").strip()
    view = next((v for v in views if raw_task.isdigit() and v.task.id == int(raw_task)), None)
    if view is None:
        ctx = await _context(session, views, token=token, request=request, error="请选择要登记的转移户")
        return _render(settings, ctx, status_code=422)
    try:
        people = str(form.get("people_moved") or "").strip()
        shelter = str(form.get("shelter_id") or "").strip()
        data = TaskDecision(
            status=str(form.get("status") or ""),
            shelter_id=int(shelter) if shelter.isdigit() else None,
            people_moved=int(people) if people.isdigit() else None,
            note=str(form.get("note") or "") or None,
        )
        if data.status != TaskStatus.moved:
            data.shelter_id = None
        await service.decide(session, view=view, data=data, actor=f"person:{view.keeper.id}", now=now)
    except ValidationError:
        ctx = await _context(
            session,
            views,
            token=token,
            request=request,
            error="请选择转移情况,人数须为整数",
            error_task=view.task.id,
            posted=posted,
        )
        return _render(settings, ctx, status_code=422)
    except DomainError as exc:
        ctx = await _context(
            session, views, token=token, request=request, error=exc.message_zh, error_task=view.task.id, posted=posted
        )
        return _render(settings, ctx, status_code=exc.status_code)
    await _acknowledge(session, view.task.notice_id, request, now)
    return RedirectResponse(f"{request.scope.get('root_path', '')}/e/{token}?saved=1#h{view.task.id}", status_code=303)


# --- the board page ---------------------------------------------------------------------------------------------


@lru_cache
def _env(templates_dir: str) -> Environment:
    return Environment(
        loader=FileSystemLoader(templates_dir),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@page_router.get("/console/evacuation/{warning_id}", response_class=HTMLResponse)
async def board_page(
    warning_id: int, principal: Reader, session: SessionDep, settings: SettingsDep, now: NowDep
) -> HTMLResponse:
    """转移避险一张图: the board as a table by region, worst first (cookie or bearer login)."""
    warning = await service.warning_in_scope(session, warning_id=warning_id, scope_path=principal.scope.path)
    b = await report.board(session, warning=warning, scope_path=principal.scope.path, now=now)
    html = (
        _env(str(settings.templates_dir))
        .get_template("evacuation/board.html.j2")
        .render(b=b, generated=local_minute(now))
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


# --- the shelter manager's page -----------------------------------------------------------------------------------


async def _link(session: AsyncSession, token: str, settings: Settings) -> shelters.LinkView | None:
    link_id = shelters.link_from_token(token, link_key=link_key_of(settings))
    return await shelters.load_link(session, link_id=link_id) if link_id is not None else None


async def _shelter_context(
    session: AsyncSession,
    view: shelters.LinkView,
    *,
    token: str,
    request: Request,
    flash: str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    rows = await shelters.expected(session, view=view)
    occ = shelters.occupancy(view, rows)
    wctx = ack_pages._warning_context(view.warning)
    wctx["state"] = view.warning.state
    return {
        "w": wctx,
        "flash": flash,
        "error": error,
        "base": f"{request.scope.get('root_path', '')}/s/{token}",
        "shelter": view.shelter,
        "manager": view.manager.name,
        "occ": occ,
        "over": occ.present > occ.capacity,
        "rows": [
            {
                **vars(e),
                "status_zh": TASK_STATUS_ZH.get(e.status, e.status),
                "vulnerable_zh": "、".join(VULNERABLE_ZH.get(v, v) for v in e.vulnerable.split(",") if v),
                "present": e.arrived - e.departed,
            }
            for e in rows
        ],
    }


@page_router.get("/s/{token}", response_model=None)
async def shelter_page(
    token: str, request: Request, settings: SettingsDep, session: SessionDep, now: NowDep, saved: int = 0
) -> Response:
    """避灾安置点: the households expected, arrivals and departures, occupancy against capacity."""
    view = await _link(session, token, settings)
    if view is None:
        return await _bad(request, settings)
    if shelters.gone(view, now=now, grace_hours=settings.ack_link_grace_hours):
        return ack_pages.message_page(settings, 410)
    ctx = await _shelter_context(session, view, token=token, request=request, flash="已登记" if saved else None)
    return _render(settings, ctx, template="shelter")


@page_router.post("/s/{token}/{movement}", response_model=None)
async def shelter_movement(
    token: str, movement: str, request: Request, settings: SettingsDep, session: SessionDep, now: NowDep
) -> Response:
    """The manager records people of a household arriving (arrival) or leaving (departure)."""
    view = await _link(session, token, settings)
    if view is None or movement not in ("arrival", "departure"):
        return await _bad(request, settings)
    if shelters.gone(view, now=now, grace_hours=settings.ack_link_grace_hours):
        return ack_pages.message_page(settings, 410)
    form = await request.form()
    task_id, people = str(form.get("task_id") or "").strip(), str(form.get("people") or "").strip()
    try:
        if not (task_id.isdigit() and people.isdigit()):
            raise Invalid("task_id and people must be whole numbers", "请选择转移户并填写人数", field="people")
        record = shelters.arrive if movement == "arrival" else shelters.depart
        await record(session, view=view, task_id=int(task_id), people=int(people), now=now)
    except DomainError as exc:
        ctx = await _shelter_context(session, view, token=token, request=request, error=exc.message_zh)
        return _render(settings, ctx, status_code=exc.status_code, template="shelter")
    return RedirectResponse(f"{request.scope.get('root_path', '')}/s/{token}?saved=1", status_code=303)
