"""The console's page renderer: one Jinja2 environment, the menu by role, Beijing time and readable phones."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment

from warning_service import labels
from warning_service.auth.models import User
from warning_service.early_warning.models import HAZARD_ZH, LEVEL_COLOUR, LEVEL_ZH
from warning_service.person.models import ROLE_ZH
from warning_service.templating import page_environment

BEIJING = ZoneInfo("Asia/Shanghai")
STATUS_ZH = {"actual": "实际", "exercise": "演练", "test": "测试"}
STATE_ZH = dict(labels.WARNING_STATE)
USER_ROLE_ZH = {"duty_officer": "值班员", "leader": "带班领导", "auditor": "审计员", "admin": "管理员"}


@dataclass(frozen=True)
class MenuItem:
    key: str
    label: str
    href: str
    roles: tuple[str, ...]


# Admins see everything; the others only what their role may use, so no menu entry leads to a refusal.
MENU = (
    MenuItem("issue", "预警发布", "/console/issue", ("duty_officer",)),
    MenuItem("approvals", "待审核", "/console/approvals", ("leader",)),
    MenuItem("warnings", "预警列表", "/console/warnings", ("duty_officer", "leader", "auditor")),
    MenuItem("board", "叫应看板", "/console/board", ("duty_officer", "leader", "auditor")),
    MenuItem("reports", "叫应统计", "/console/reports", ("auditor",)),
    MenuItem("people", "人员名册", "/console/people", ("duty_officer", "leader", "auditor")),
    MenuItem("drills", "演练", "/console/drills", ("duty_officer", "auditor")),
    MenuItem("broadcast", "广播终端", "/console/broadcast", ("duty_officer", "auditor")),
    MenuItem("audit", "审计", "/console/audit", ("auditor",)),
)
LANDING = {"duty_officer": "/console/warnings", "leader": "/console/approvals", "auditor": "/console/reports",
           "admin": "/console/people"}


# Sign-off is the leader's own act: an admin account (often a technician's, sometimes shared) has no queue.
LEADER_ONLY = frozenset({"approvals"})


def menu_for(role: str) -> list[MenuItem]:
    return [m for m in MENU if role in m.roles or (role == "admin" and m.key not in LEADER_ONLY)]


def beijing(t: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A UTC instant as Beijing wall time, whatever the server's or the browser's zone."""
    return t.astimezone(BEIJING).strftime(fmt) if t else ""


def readable_phone(phone: str | None) -> str:
    """'+8613900000001' → '139 0000 0001', as people read a mobile number aloud."""
    if not phone:
        return ""
    digits = re.sub(r"\D", "", phone)
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if len(digits) == 11 and digits.startswith("1"):
        return f"{digits[:3]} {digits[3:7]} {digits[7:]}"
    return phone


def tel_href(phone: str | None) -> str:
    return "tel:" + re.sub(r"[^\d+]", "", phone or "")


@lru_cache(maxsize=4)
def _env(templates_dir: str) -> Environment:
    env = page_environment(templates_dir).overlay()
    env.filters.update(beijing=beijing, phone=readable_phone, tel=tel_href,
                       hazard_zh=lambda v: HAZARD_ZH.get(v, v), level_zh=lambda v: LEVEL_ZH.get(v, v),
                       level_colour=lambda v: LEVEL_COLOUR.get(v, "#616161"),
                       status_zh=lambda v: STATUS_ZH.get(v, v), state_zh=lambda v: STATE_ZH.get(v, v),
                       role_zh=lambda v: ROLE_ZH.get(v, v), user_role_zh=lambda v: USER_ROLE_ZH.get(v, v))
    return env


def render(request: Request, name: str, *, user: User | None, active: str = "", status_code: int = 200,
           **context: Any) -> HTMLResponse:
    settings = request.app.state.settings
    html = _env(str(Path(settings.templates_dir))).get_template(f"console/{name}").render(
        user=user, menu=menu_for(user.role) if user else [], active=active, **context)
    return HTMLResponse(html, status_code=status_code)


def safe_next(target: str | None, *, default: str = "/console/") -> str:
    """A local path to return to after login; anything that could leave this site is dropped."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def to_login(request: Request) -> RedirectResponse:
    """Back to the login page, remembering where the user was (their session expired or never began)."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/console/login?next={quote(here, safe='')}", status_code=303)
