"""The 转移任务 page behind the SMS link (mobile, no login, the notice's own token) and the board page.

The page speaks only of its one household. Any decision posted from it also answers the notice (叫应), as
the link page's button does: whoever reports where the family went has plainly got the message.
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
from warning_service.errors import DomainError
from warning_service.evacuation import report, service
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
from warning_service.region.models import Region
from warning_service.region.scope import Scope

page_router = APIRouter(include_in_schema=False)
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


def gone(view: service.TaskView, *, now: datetime, grace_hours: int) -> bool:
    """A task page lives until its area is released, plus the grace period — not merely until the lift:
    evacuees stay out after a lift, and returns must still be recorded."""
    released = view.task.released_at
    return released is not None and now > released + timedelta(hours=grace_hours)


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


async def _context(
    session: AsyncSession,
    view: service.TaskView,
    *,
    token: str,
    request: Request,
    flash: str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    t, h, z, w = view.task, view.household, view.zone, view.warning
    notice = await session.get(Notice, t.notice_id)
    assert notice is not None
    shelter = await session.get(Shelter, t.shelter_id) if t.shelter_id else None
    village = await session.get(Region, z.village_code) if z.village_code else None
    wctx = ack_pages._warning_context(w)
    wctx["state"] = w.state
    return {
        "w": wctx,
        "flash": flash,
        "error": error,
        "base": f"{request.scope.get('root_path', '')}/e/{token}",
        "t": {
            "status": t.status,
            "status_zh": TASK_STATUS_ZH.get(t.status, t.status),
            "household": h.name,
            "people": h.people,
            "phone": h.phone or "",
            "people_moved": t.people_moved,
            "vulnerable": "、".join(VULNERABLE_ZH.get(v, v) for v in h.vulnerable.split(",") if v),
            "zone": z.name,
            "zone_kind": ZONE_KIND_ZH.get(z.kind, z.kind),
            "village": village.name if village else "",
            "keeper": view.keeper.name,
            "shelter": shelter.name if shelter else "",
            "shelter_id": t.shelter_id,
            "arrived_people": t.arrived_people,
            "note": t.note,
            "returned_early": t.returned_early,
            "released": t.released_at is not None,
        },
        "state_class": STATE_CLASS.get(t.status, "off"),
        "ack_open": notice.state in ANSWERABLE_STATES and w.state == "active",
        "deadline": local_minute(notice.deadline),
        "choices": CHOICES,
        "shelters": await _shelters_near(session, view),
    }


async def _view(session: AsyncSession, token: str, settings: Settings) -> service.TaskView | None:
    notice_id = notice_from_token(token, settings)
    return await service.load_task(session, notice_id=notice_id, lock=True) if notice_id is not None else None


async def _bad(request: Request, settings: Settings) -> Response:
    rt = request.app.state.runtime
    over = await rt.bad_tokens.hit(client_ip(request), rt.clock.now())
    return ack_pages.message_page(settings, 429 if over else 404, headers={"Retry-After": "60"} if over else None)


def _render(settings: Settings, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    html = ack_pages.environment(str(settings.templates_dir)).get_template("evacuation/task.html.j2").render(context)
    return HTMLResponse(html, status_code=status_code, headers=ack_pages.SECURITY_HEADERS)


async def _acknowledge(session: AsyncSession, view: service.TaskView, request: Request, now: datetime) -> None:
    try:
        await answer.acknowledge(
            session, notice_id=view.task.notice_id, path="link", now=now, source=client_ip(request)
        )
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
    """转移任务: the household, 确认收到, and where the family went."""
    view = await _view(session, token, settings)
    if view is None:
        return await _bad(request, settings)
    if gone(view, now=now, grace_hours=settings.ack_link_grace_hours):
        return ack_pages.message_page(settings, 410)
    flash = "已保存,谢谢!" if saved else ("已确认收到,请立即组织转移。" if acked else None)
    return _render(settings, await _context(session, view, token=token, request=request, flash=flash))


@page_router.post("/e/{token}/ack", response_model=None)
async def task_ack(token: str, request: Request, settings: SettingsDep, session: SessionDep, now: NowDep) -> Response:
    """确认收到 from the task page."""
    view = await _view(session, token, settings)
    if view is None:
        return await _bad(request, settings)
    if gone(view, now=now, grace_hours=settings.ack_link_grace_hours):
        return ack_pages.message_page(settings, 410)
    await _acknowledge(session, view, request, now)
    return RedirectResponse(f"{request.scope.get('root_path', '')}/e/{token}?acked=1", status_code=303)


@page_router.post("/e/{token}", response_model=None)
async def task_decision(
    token: str, request: Request, settings: SettingsDep, session: SessionDep, now: NowDep
) -> Response:
    """The 包户责任人 reports 已转移 / 投亲靠友 / 拒绝转移 / 不在家 / 已返回."""
    view = await _view(session, token, settings)
    if view is None:
        return await _bad(request, settings)
    if gone(view, now=now, grace_hours=settings.ack_link_grace_hours):
        return ack_pages.message_page(settings, 410)
    form = await request.form()
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
        ctx = await _context(session, view, token=token, request=request, error="请选择转移情况,人数须为整数")
        return _render(settings, ctx, status_code=422)
    except DomainError as exc:
        ctx = await _context(session, view, token=token, request=request, error=exc.message_zh)
        return _render(settings, ctx, status_code=exc.status_code)
    await _acknowledge(session, view, request, now)
    return RedirectResponse(f"{request.scope.get('root_path', '')}/e/{token}?saved=1", status_code=303)


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
